/* The ASGI hook point: the twin of asgi.py.
 *
 *   AsgiMiddleware  TelemetryMiddleware: with nothing attached it calls the app and
 *                   returns the app's own awaitable (no frame of its own);
 *   AsgiRequest     _Request: one request's own context, its operation, and its
 *                   `receive`/`send` for the app;
 *   Step            what asgi.run_in_context and the `async def`s of _Request do
 *                   around one awaitable: step it (in a context, or in the current
 *                   one) and report what its outcome means for the operation.
 */
#include "core.h"

typedef struct {
    PyObject_HEAD
    CoreState *state;
    Operation *op;
    PyObject *scope;
    PyObject *receive;        /* the server's */
    PyObject *send;           /* the server's */
    PyObject *send_owner;     /* send.__self__, or NULL: where uvicorn flags a gone client */
    PyObject *server_context; /* a copy of the server's context: the last send runs in it */
    PyObject *context;        /* the request's own: the app and the hooks run in it */
    char counts_body;
} AsgiRequest;

enum StepKind { STEP_APP, STEP_SEND, STEP_SEND_LAST, STEP_RECEIVE };

typedef struct {
    PyObject_HEAD
    AsgiRequest *request;
    PyObject *iterator; /* what the awaitable's __await__ gave; NULL once finished */
    PyObject *context;  /* where each step runs; NULL: the current context */
    PyObject *message;  /* STEP_SEND*: the message sent */
    enum StepKind kind;
} Step;

/* ---------------------------------------------------------------- helpers */

/* scope.get(key): a new reference, or NULL with no error when the key is absent. */
static PyObject *
mapping_get(PyObject *mapping, PyObject *key)
{
    if (PyDict_Check(mapping)) {
        return Py_XNewRef(PyDict_GetItemWithError(mapping, key));
    }
    PyObject *value = PyObject_GetItem(mapping, key);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
    }
    return value;
}

static int
text_equals(PyObject *value, PyObject *text)
{
    if (value == text) {
        return 1;
    }
    if (!PyUnicode_Check(value)) {
        return 0;
    }
    int result = PyUnicode_Compare(value, text);
    if (result == -1 && PyErr_Occurred()) {
        return -1;
    }
    return result == 0;
}

/* The iterator `await awaitable` steps: a coroutine itself, else its __await__(). */
static PyObject *
awaitable_iterator(PyObject *awaitable)
{
    if (PyCoro_CheckExact(awaitable)) {
        return Py_NewRef(awaitable);
    }
    PyAsyncMethods *async = Py_TYPE(awaitable)->tp_as_async;
    if (async == NULL || async->am_await == NULL) {
        PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression",
                     Py_TYPE(awaitable)->tp_name);
        return NULL;
    }
    return async->am_await(awaitable);
}

/* ---------------------------------------------------------------- the request */

/* Twin of _Request._note_route: the first route the framework noted wins. */
static int
note_route(AsgiRequest *request)
{
    if (request->op->route != NULL) {
        return 0;
    }
    PyObject *route = mapping_get(request->scope, request->state->s_route_key);
    if (route == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (PyUnicode_Check(route)) {
        request->op->route = route;
    }
    else {
        Py_DECREF(route);
    }
    return 0;
}

/* Runs `report(request, arg)` with the request's context entered, as the Python twin
 * runs `context.run(...)`; an exception pending on entry is kept. */
static int
in_request_context(AsgiRequest *request, int (*report)(AsgiRequest *, PyObject *),
                   PyObject *arg)
{
    if (PyContext_Enter(request->context) < 0) {
        return -1;
    }
    int result = report(request, arg);
    PyObject *exc = result < 0 ? PyErr_GetRaisedException() : NULL;
    if (PyContext_Exit(request->context) < 0) {
        Py_XDECREF(exc);
        return -1;
    }
    if (exc != NULL) {
        PyErr_SetRaisedException(exc);
    }
    return result;
}

/* Twin of _Request._raised. */
static int
report_raised(AsgiRequest *request, PyObject *exc)
{
    if (note_route(request) < 0) {
        return -1;
    }
    return operation_fail_with(request->op, exc, 0);
}

/* Twin of _Request._returned. */
static int
report_returned(AsgiRequest *request, PyObject *unused)
{
    if (request->op->done) {
        return 0;
    }
    if (note_route(request) < 0) {
        return -1;
    }
    CoreState *state = request->state;
    return operation_fail(request->op, state->s_runtime_error, state->s_app_returned, NULL);
}

/* Twin of _dropped_for_a_gone_client: uvicorn returns quietly from a send to a gone
 * client, and flags its request cycle (the object `send` is bound to). */
static int
dropped_for_a_gone_client(AsgiRequest *request)
{
    if (request->send_owner == NULL) {
        return 0;
    }
    PyObject *flag = optional_attr(request->send_owner, request->state->s_disconnected);
    if (flag == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    int gone = flag == Py_True;
    Py_DECREF(flag);
    return gone;
}

/* After a send finished without raising: the rest of the twin's `send`. */
static int
report_sent(AsgiRequest *request, Step *step)
{
    CoreState *state = request->state;
    Operation *op = request->op;
    int gone = dropped_for_a_gone_client(request);
    if (gone) {
        return gone < 0 ? -1 : operation_fail(op, state->s_client_disconnected,
                                              state->s_client_gone_message, NULL);
    }
    PyObject *kind = PyObject_GetItem(step->message, state->s_type);
    if (kind == NULL) {
        return -1;
    }
    int body = text_equals(kind, state->s_response_body);
    Py_DECREF(kind);
    if (body <= 0) {
        return body;
    }
    if (request->counts_body) {
        PyObject *chunk = mapping_get(step->message, state->s_body);
        if (chunk == NULL && PyErr_Occurred()) {
            return -1;
        }
        if (chunk != NULL) {
            Py_ssize_t size = PyObject_Length(chunk);
            Py_DECREF(chunk);
            if (size < 0) {
                return -1;
            }
            op->body_size += size;
        }
    }
    if (step->kind != STEP_SEND_LAST) {
        return 0;
    }
    PyObject *handled = mapping_get(request->scope, state->s_exception_key);
    if (handled == NULL && PyErr_Occurred()) {
        return -1;
    }
    int result = operation_complete(op, handled);
    Py_XDECREF(handled);
    return result;
}

/* After a receive: a disconnect before the response was complete is an error. */
static int
report_received(AsgiRequest *request, PyObject *message)
{
    CoreState *state = request->state;
    PyObject *kind = PyObject_GetItem(message, state->s_type);
    if (kind == NULL) {
        return -1;
    }
    int disconnect = text_equals(kind, state->s_disconnect);
    Py_DECREF(kind);
    if (disconnect <= 0 || request->op->done) {
        return disconnect < 0 ? -1 : 0;
    }
    if (note_route(request) < 0) {
        return -1;
    }
    return operation_fail(request->op, state->s_client_disconnected,
                          state->s_client_gone_message, NULL);
}

/* ---------------------------------------------------------------- Step */

static Step *
step_new(AsgiRequest *request, PyObject *awaitable, PyObject *context, enum StepKind kind,
         PyObject *message)
{
    PyObject *iterator = awaitable_iterator(awaitable);
    if (iterator == NULL) {
        return NULL;
    }
    Step *step = PyObject_GC_New(Step, request->state->step_type);
    if (step == NULL) {
        Py_DECREF(iterator);
        return NULL;
    }
    step->request = (AsgiRequest *)Py_NewRef(request);
    step->iterator = iterator;
    step->context = Py_XNewRef(context);
    step->message = Py_XNewRef(message);
    step->kind = kind;
    PyObject_GC_Track(step);
    return step;
}

/* What the step's outcome means for the operation: it returned `value`. */
static int
step_returned(Step *step, PyObject *value)
{
    AsgiRequest *request = step->request;
    switch (step->kind) {
    case STEP_APP:
        return request->op->done ? 0 : in_request_context(request, report_returned, NULL);
    case STEP_RECEIVE:
        return report_received(request, value);
    default:
        return report_sent(request, step);
    }
}

/* ... or it raised (the exception is set, and stays set). */
static void
step_raised(Step *step)
{
    AsgiRequest *request = step->request;
    PyObject *exc = PyErr_GetRaisedException();
    int reported = 0;
    if (step->kind == STEP_APP) {
        reported = in_request_context(request, report_raised, exc);
    }
    else if (step->kind != STEP_RECEIVE && PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError)) {
        reported = operation_fail_with(request->op, exc, 1);
    }
    if (reported < 0) { /* reporting itself failed: that error wins, as in the twin */
        Py_DECREF(exc);
        return;
    }
    PyErr_SetRaisedException(exc);
}

/* One step: send `value` (or throw `thrown`) into the iterator, in the step's context. */
static PySendResult
step_advance(Step *step, PyObject *value, PyObject *thrown, PyObject **result)
{
    *result = NULL;
    if (step->iterator == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited hooktel step");
        return PYGEN_ERROR;
    }
    if (step->context != NULL && PyContext_Enter(step->context) < 0) {
        return PYGEN_ERROR;
    }
    PySendResult outcome;
    if (thrown == NULL) {
        outcome = PyIter_Send(step->iterator, value, result);
    }
    else {
        PyObject *throw = optional_attr(step->iterator, step->request->state->s_throw);
        if (throw == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetRaisedException(Py_NewRef(thrown)); /* a plain iterator takes no throw */
            }
            outcome = PYGEN_ERROR;
        }
        else {
            *result = PyObject_CallOneArg(throw, thrown);
            Py_DECREF(throw);
            outcome = PYGEN_NEXT;
            if (*result == NULL) {
                outcome = PYGEN_ERROR;
                if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
                    PyObject *stop = PyErr_GetRaisedException();
                    *result = Py_NewRef(((PyStopIterationObject *)stop)->value);
                    Py_DECREF(stop);
                    outcome = PYGEN_RETURN;
                }
            }
        }
    }
    if (step->context != NULL) {
        PyObject *exc = outcome == PYGEN_ERROR ? PyErr_GetRaisedException() : NULL;
        int exited = PyContext_Exit(step->context);
        if (exc != NULL) {
            PyErr_SetRaisedException(exc);
        }
        if (exited < 0 && exc == NULL) {
            Py_CLEAR(*result);
            return PYGEN_ERROR;
        }
    }
    if (outcome == PYGEN_NEXT) {
        return outcome;
    }
    Py_CLEAR(step->iterator);
    if (outcome == PYGEN_RETURN) {
        if (step_returned(step, *result) < 0) {
            Py_CLEAR(*result);
            return PYGEN_ERROR;
        }
        return outcome;
    }
    step_raised(step);
    return PYGEN_ERROR;
}

static PySendResult
step_am_send(Step *step, PyObject *value, PyObject **result)
{
    return step_advance(step, value, NULL, result);
}

/* The generator protocol over step_advance: a return is a StopIteration. */
static PyObject *
step_result(PySendResult outcome, PyObject *result)
{
    if (outcome == PYGEN_RETURN) {
        if (result == Py_None) {
            PyErr_SetNone(PyExc_StopIteration);
        }
        else {
            PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
            if (stop != NULL) {
                PyErr_SetRaisedException(stop);
            }
        }
        Py_DECREF(result);
        return NULL;
    }
    return result;
}

static PyObject *
step_iternext(Step *step)
{
    PyObject *result;
    PySendResult outcome = step_advance(step, Py_None, NULL, &result);
    if (outcome == PYGEN_RETURN && result == Py_None) {
        Py_DECREF(result);
        return NULL; /* exhausted: no StopIteration needed for tp_iternext */
    }
    return step_result(outcome, result);
}

static PyObject *
step_send(Step *step, PyObject *value)
{
    PyObject *result;
    PySendResult outcome = step_advance(step, value, NULL, &result);
    return step_result(outcome, result);
}

static PyObject *
step_throw(Step *step, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw(exception)");
        return NULL;
    }
    PyObject *thrown = args[0];
    if (PyExceptionClass_Check(thrown)) { /* the old throw(type[, value[, tb]]) form */
        thrown = PyObject_CallNoArgs(thrown);
    }
    else if (PyExceptionInstance_Check(thrown)) {
        Py_INCREF(thrown);
    }
    else {
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
        return NULL;
    }
    if (thrown == NULL) {
        return NULL;
    }
    PyObject *result;
    PySendResult outcome = step_advance(step, NULL, thrown, &result);
    Py_DECREF(thrown);
    return step_result(outcome, result);
}

/* close(): closes the inner iterator; the app's step reports it as the twin does (a
 * GeneratorExit goes through its `except BaseException`). */
static PyObject *
step_close(Step *step, PyObject *unused)
{
    if (step->iterator == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *close = optional_attr(step->iterator, step->request->state->s_close);
    if (close == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (close != NULL) {
        if (step->context != NULL && PyContext_Enter(step->context) < 0) {
            Py_DECREF(close);
            return NULL;
        }
        PyObject *closed = PyObject_CallNoArgs(close);
        Py_DECREF(close);
        PyObject *exc = closed == NULL ? PyErr_GetRaisedException() : NULL;
        if (step->context != NULL && PyContext_Exit(step->context) < 0) {
            Py_XDECREF(exc);
            Py_XDECREF(closed);
            return NULL;
        }
        if (exc != NULL) {
            PyErr_SetRaisedException(exc);
            Py_CLEAR(step->iterator);
            return NULL;
        }
        Py_DECREF(closed);
    }
    Py_CLEAR(step->iterator);
    if (step->kind == STEP_APP && !step->request->op->done) {
        PyObject *exit = PyObject_CallNoArgs(PyExc_GeneratorExit);
        if (exit == NULL) {
            return NULL;
        }
        int reported = in_request_context(step->request, report_raised, exit);
        Py_DECREF(exit);
        if (reported < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef step_methods[] = {
    {"send", (PyCFunction)step_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))step_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)step_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static int
step_traverse(Step *step, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(step));
    Py_VISIT(step->request);
    Py_VISIT(step->iterator);
    Py_VISIT(step->context);
    Py_VISIT(step->message);
    return 0;
}

static int
step_clear(Step *step)
{
    Py_CLEAR(step->request);
    Py_CLEAR(step->iterator);
    Py_CLEAR(step->context);
    Py_CLEAR(step->message);
    return 0;
}

static void
step_dealloc(Step *step)
{
    PyTypeObject *type = Py_TYPE(step);
    PyObject_GC_UnTrack(step);
    step_clear(step);
    type->tp_free(step);
    Py_DECREF(type);
}

static PyType_Slot step_slots[] = {
    {Py_tp_doc, "One awaitable of a request, stepped in its context, its outcome reported."},
    {Py_am_await, PyObject_SelfIter},
    {Py_am_send, step_am_send},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, step_iternext},
    {Py_tp_methods, step_methods},
    {Py_tp_traverse, step_traverse},
    {Py_tp_clear, step_clear},
    {Py_tp_dealloc, step_dealloc},
    {0, NULL},
};

PyType_Spec step_spec = {
    .name = "hooktel._core.compiled.Step",
    .basicsize = sizeof(Step),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = step_slots,
};

/* ---------------------------------------------------------------- receive and send */

static PyObject *
asgi_receive(AsgiRequest *request, PyObject *unused)
{
    PyObject *awaitable = PyObject_CallNoArgs(request->receive);
    if (awaitable == NULL) {
        return NULL;
    }
    Step *step = step_new(request, awaitable, NULL, STEP_RECEIVE, NULL);
    Py_DECREF(awaitable);
    return (PyObject *)step;
}

/* Twin of _Request._start_response: the status, the captured headers, the injected
 * ones; a new reference to the message to send (a copy when headers were added). */
static PyObject *
start_response(AsgiRequest *request, PyObject *message)
{
    CoreState *state = request->state;
    Operation *op = request->op;
    if (note_route(request) < 0) {
        return NULL;
    }
    PyObject *headers = mapping_get(message, state->s_headers);
    if (headers == NULL && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *status_object = PyObject_GetItem(message, state->s_status);
    PyObject *method = status_object ? PyObject_GetItem(request->scope, state->s_scope_method) : NULL;
    PyObject *pairs = NULL, *injected = NULL, *result = NULL;
    if (method == NULL) {
        goto done;
    }
    long status = 0;
    if (PyLong_Check(status_object)) {
        status = PyLong_AsLong(status_object);
        if (status == -1 && PyErr_Occurred()) {
            goto done;
        }
    }
    pairs = PyTuple_New(0);
    if (op->response_capture != Py_None && pairs != NULL && headers != NULL) {
        Py_SETREF(pairs, PyObject_CallOneArg(state->header_pairs, headers));
    }
    if (pairs == NULL || operation_respond(op, status, pairs) < 0) {
        goto done;
    }
    request->counts_body = !omits_body(state, method, status);
    injected = operation_inject(op);
    if (injected == NULL) {
        goto done;
    }
    if (!PyDict_Check(injected) || PyDict_GET_SIZE(injected) == 0) {
        result = Py_NewRef(message);
        goto done;
    }
    /* {**message, "headers": [*headers, *((k.encode("latin-1"), v.encode("latin-1")))]} */
    PyObject *all = headers ? PySequence_List(headers) : PyList_New(0);
    if (all == NULL) {
        goto done;
    }
    Py_ssize_t position = 0;
    PyObject *name, *value;
    while (PyDict_Next(injected, &position, &name, &value)) {
        PyObject *pair = Py_BuildValue("(NN)", PyUnicode_AsLatin1String(name),
                                       PyUnicode_AsLatin1String(value));
        if (pair == NULL || PyList_Append(all, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(all);
            goto done;
        }
        Py_DECREF(pair);
    }
    result = PyDict_New();
    if (result == NULL || PyDict_Update(result, message) < 0 ||
        PyDict_SetItem(result, state->s_headers, all) < 0) {
        Py_CLEAR(result);
    }
    Py_DECREF(all);
done:
    Py_XDECREF(headers);
    Py_XDECREF(status_object);
    Py_XDECREF(method);
    Py_XDECREF(pairs);
    Py_XDECREF(injected);
    return result;
}

static PyObject *
asgi_send(AsgiRequest *request, PyObject *message)
{
    CoreState *state = request->state;
    PyObject *kind = PyObject_GetItem(message, state->s_type);
    if (kind == NULL) {
        return NULL;
    }
    enum StepKind step_kind = STEP_SEND;
    int start = text_equals(kind, state->s_response_start);
    int body = start == 0 ? text_equals(kind, state->s_response_body) : 0;
    Py_DECREF(kind);
    if (start < 0 || body < 0) {
        return NULL;
    }
    if (start) {
        message = start_response(request, message);
        if (message == NULL) {
            return NULL;
        }
    }
    else {
        Py_INCREF(message);
        if (body) {
            PyObject *more = mapping_get(message, state->s_more_body);
            int more_body = more == NULL ? 0 : PyObject_IsTrue(more);
            Py_XDECREF(more);
            if (more_body < 0 || (more == NULL && PyErr_Occurred())) {
                Py_DECREF(message);
                return NULL;
            }
            step_kind = more_body ? STEP_SEND : STEP_SEND_LAST;
        }
    }
    PyObject *awaitable;
    PyObject *context = step_kind == STEP_SEND_LAST ? request->server_context : NULL;
    if (context != NULL) { /* the server may start the next pipelined request in it */
        if (PyContext_Enter(context) < 0) {
            Py_DECREF(message);
            return NULL;
        }
        awaitable = PyObject_CallOneArg(request->send, message);
        PyObject *exc = awaitable == NULL ? PyErr_GetRaisedException() : NULL;
        if (PyContext_Exit(context) < 0) {
            Py_XDECREF(exc);
            Py_XDECREF(awaitable);
            Py_DECREF(message);
            return NULL;
        }
        if (exc != NULL) {
            PyErr_SetRaisedException(exc);
        }
    }
    else {
        awaitable = PyObject_CallOneArg(request->send, message);
    }
    if (awaitable == NULL) {
        /* the twin awaits inside its `try`: an OSError raised here is the same failure */
        if (PyErr_ExceptionMatches(PyExc_OSError)) {
            PyObject *exc = PyErr_GetRaisedException();
            int reported = operation_fail_with(request->op, exc, 1);
            if (reported < 0) {
                Py_DECREF(exc);
            }
            else {
                PyErr_SetRaisedException(exc);
            }
        }
        Py_DECREF(message);
        return NULL;
    }
    Step *step = step_new(request, awaitable, context, step_kind, message);
    Py_DECREF(awaitable);
    Py_DECREF(message);
    return (PyObject *)step;
}

static PyMethodDef asgi_receive_def = {"receive", (PyCFunction)asgi_receive, METH_NOARGS, NULL};
static PyMethodDef asgi_send_def = {"send", (PyCFunction)asgi_send, METH_O, NULL};

static int
asgi_request_traverse(AsgiRequest *request, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(request));
    Py_VISIT(request->op);
    Py_VISIT(request->scope);
    Py_VISIT(request->receive);
    Py_VISIT(request->send);
    Py_VISIT(request->send_owner);
    Py_VISIT(request->server_context);
    Py_VISIT(request->context);
    return 0;
}

static int
asgi_request_clear(AsgiRequest *request)
{
    Py_CLEAR(request->op);
    Py_CLEAR(request->scope);
    Py_CLEAR(request->receive);
    Py_CLEAR(request->send);
    Py_CLEAR(request->send_owner);
    Py_CLEAR(request->server_context);
    Py_CLEAR(request->context);
    return 0;
}

static void
asgi_request_dealloc(AsgiRequest *request)
{
    PyTypeObject *type = Py_TYPE(request);
    PyObject_GC_UnTrack(request);
    asgi_request_clear(request);
    type->tp_free(request);
    Py_DECREF(type);
}

static PyType_Slot asgi_request_slots[] = {
    {Py_tp_doc, "One request: its own context, its receive/send, and its operation."},
    {Py_tp_traverse, asgi_request_traverse},
    {Py_tp_clear, asgi_request_clear},
    {Py_tp_dealloc, asgi_request_dealloc},
    {0, NULL},
};

PyType_Spec asgi_request_spec = {
    .name = "hooktel._core.compiled.AsgiRequest",
    .basicsize = sizeof(AsgiRequest),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = asgi_request_slots,
};

/* value.decode("latin-1"): bytes decoded directly; anything else asked to decode itself. */
static PyObject *
bytes_as_latin1(PyObject *value)
{
    if (PyBytes_CheckExact(value)) {
        return PyUnicode_DecodeLatin1(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), NULL);
    }
    return PyObject_CallMethod(value, "decode", "s", "latin-1");
}

/* Twin of _Request._begin: the start attributes from the scope. */
static Operation *
begin_from_scope(CoreState *state, PyObject *hooks, PyObject *scope)
{
    Operation *op = NULL;
    PyObject *method = PyObject_GetItem(scope, state->s_scope_method);
    PyObject *scheme = NULL, *raw_path = NULL, *path = NULL, *query_string = NULL,
             *query = NULL, *headers = NULL, *server = NULL, *client = NULL, *protocol = NULL;
    if (method == NULL) {
        goto done;
    }
    scheme = mapping_get(scope, state->s_scheme);
    if (scheme == NULL && (PyErr_Occurred() || !(scheme = Py_NewRef(state->s_http)))) {
        goto done;
    }
    raw_path = mapping_get(scope, state->s_raw_path);
    if (raw_path == NULL && PyErr_Occurred()) {
        goto done;
    }
    int use_raw = raw_path != NULL ? PyObject_IsTrue(raw_path) : 0;
    if (use_raw < 0) {
        goto done;
    }
    path = use_raw ? bytes_as_latin1(raw_path) : PyObject_GetItem(scope, state->s_path);
    query_string = mapping_get(scope, state->s_query_string);
    if (path == NULL || (query_string == NULL && PyErr_Occurred())) {
        goto done;
    }
    query = query_string == NULL ? Py_NewRef(state->s_empty)
                                 : bytes_as_latin1(query_string);
    headers = PyObject_GetItem(scope, state->s_headers);
    server = mapping_get(scope, state->s_server);
    if (query == NULL || headers == NULL || (server == NULL && PyErr_Occurred())) {
        goto done;
    }
    if (server != NULL) { /* server if server and server[1] is not None else None */
        int truthy = PyObject_IsTrue(server);
        PyObject *port = truthy > 0 ? PySequence_GetItem(server, 1) : NULL;
        if (truthy < 0 || (truthy > 0 && port == NULL)) {
            goto done;
        }
        if (!truthy || port == Py_None) {
            Py_CLEAR(server);
        }
        Py_XDECREF(port);
    }
    client = mapping_get(scope, state->s_client);
    if (client == NULL && PyErr_Occurred()) {
        goto done;
    }
    if (client != NULL) { /* client or None */
        int truthy = PyObject_IsTrue(client);
        if (truthy < 0) {
            goto done;
        }
        if (!truthy) {
            Py_CLEAR(client);
        }
    }
    protocol = mapping_get(scope, state->s_http_version);
    if (protocol == NULL && (PyErr_Occurred() || !(protocol = Py_NewRef(state->s_empty)))) {
        goto done;
    }
    RequestFields fields = {method, scheme, path, query, headers, server, client, protocol};
    op = begin_http(state, hooks, &fields);
done:
    Py_XDECREF(method);
    Py_XDECREF(scheme);
    Py_XDECREF(raw_path);
    Py_XDECREF(path);
    Py_XDECREF(query_string);
    Py_XDECREF(query);
    Py_XDECREF(headers);
    Py_XDECREF(server);
    Py_XDECREF(client);
    Py_XDECREF(protocol);
    return op;
}

/* Twin of _Request.__init__ and the start of _Request.run: begin in the request's own
 * context, mark the scope, call the app there; the Step that awaits it. */
static PyObject *
asgi_request_run(CoreState *state, PyObject *hooks, PyObject *app, PyObject *scope,
                 PyObject *receive, PyObject *send)
{
    AsgiRequest *request = PyObject_GC_New(AsgiRequest, state->asgi_request_type);
    if (request == NULL) {
        return NULL;
    }
    request->state = state;
    request->op = NULL;
    request->scope = Py_NewRef(scope);
    request->receive = Py_NewRef(receive);
    request->send = Py_NewRef(send);
    request->send_owner = optional_attr(send, state->s_self);
    request->server_context = PyContext_CopyCurrent();
    request->context = PyContext_CopyCurrent();
    request->counts_body = 1;
    PyObject_GC_Track(request);
    /* The app holds these two; the request does not, so no cycle outlives the request. */
    PyObject *app_receive = NULL, *app_send = NULL, *result = NULL, *awaitable = NULL;
    if (PyErr_Occurred() || request->server_context == NULL || request->context == NULL) {
        goto done;
    }
    app_receive = PyCFunction_New(&asgi_receive_def, (PyObject *)request);
    app_send = PyCFunction_New(&asgi_send_def, (PyObject *)request);
    if (app_receive == NULL || app_send == NULL || PyContext_Enter(request->context) < 0) {
        goto done;
    }
    request->op = begin_from_scope(state, hooks, scope);
    if (request->op != NULL && PyObject_SetItem(scope, state->s_operation_key, request->op->id) == 0) {
        PyObject *args[3] = {scope, app_receive, app_send};
        awaitable = PyObject_Vectorcall(app, args, 3, NULL);
        if (awaitable == NULL) { /* raised before returning an awaitable: the twin's except */
            PyObject *exc = PyErr_GetRaisedException();
            if (report_raised(request, exc) < 0) {
                Py_DECREF(exc);
            }
            else {
                PyErr_SetRaisedException(exc);
            }
        }
    }
    PyObject *exc = awaitable == NULL ? PyErr_GetRaisedException() : NULL;
    if (PyContext_Exit(request->context) < 0) {
        Py_XDECREF(exc);
        goto done;
    }
    if (exc != NULL) {
        PyErr_SetRaisedException(exc);
        goto done;
    }
    result = (PyObject *)step_new(request, awaitable, request->context, STEP_APP, NULL);
    if (result == NULL) { /* not awaitable: the twin's `await` raises inside its `try` */
        PyObject *error = PyErr_GetRaisedException();
        if (in_request_context(request, report_raised, error) < 0) {
            Py_DECREF(error);
        }
        else {
            PyErr_SetRaisedException(error);
        }
    }
done:
    Py_XDECREF(awaitable);
    Py_XDECREF(app_receive);
    Py_XDECREF(app_send);
    Py_DECREF(request);
    return result;
}

/* ---------------------------------------------------------------- the middleware */

/* A request of the ASGI middleware (twin of the Python middleware's check): a scope of
 * type "http" (HTTP_SCOPE), or "websocket" (WEBSOCKET_SCOPE) once the Python twin's
 * connection runner was given; 0 for any other scope. */
enum { HTTP_SCOPE = 1, WEBSOCKET_SCOPE = 2 };

static int
asgi_scope_kind(CoreState *state, PyObject *const *args)
{
    PyObject *type = PyObject_GetItem(args[0], state->s_type);
    if (type == NULL) {
        return -1;
    }
    int kind = text_equals(type, state->s_http);
    if (kind == 0 && state->run_websocket != NULL) {
        kind = text_equals(type, state->s_websocket);
        kind = kind > 0 ? WEBSOCKET_SCOPE : kind;
    }
    Py_DECREF(type);
    return kind;
}

/* A connection runs in the Python twin's runner: its messages are few next to a
 * request's hook calls, and one implementation keeps both middlewares' reports equal. */
static PyObject *
asgi_run(CoreState *state, int kind, PyObject *hooks, PyObject *app, PyObject *const *args)
{
    if (kind == WEBSOCKET_SCOPE) {
        PyObject *call_args[5] = {hooks, app, args[0], args[1], args[2]};
        return PyObject_Vectorcall(state->run_websocket, call_args, 5, NULL);
    }
    return asgi_request_run(state, hooks, app, args[0], args[1], args[2]);
}

static PyObject *
asgi_middleware_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                           PyObject *kwnames)
{
    return middleware_call((Middleware *)self, args, nargsf, kwnames, 3, asgi_scope_kind, asgi_run);
}

static PyObject *
asgi_middleware_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return middleware_new(type, args, kwargs, asgi_middleware_vectorcall);
}

static PyType_Slot asgi_middleware_slots[] = {
    {Py_tp_doc, "Reports each `http` request of the wrapped app to the attached HTTP "
                "instruments (the compiled twin of hooktel.asgi's Python middleware)."},
    {Py_tp_new, asgi_middleware_new},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, middleware_members},
    {Py_tp_traverse, middleware_traverse},
    {Py_tp_clear, middleware_clear},
    {Py_tp_dealloc, middleware_dealloc},
    {0, NULL},
};

PyType_Spec asgi_middleware_spec = {
    .name = "hooktel.asgi.TelemetryMiddleware",
    .basicsize = sizeof(Middleware),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = asgi_middleware_slots,
};
