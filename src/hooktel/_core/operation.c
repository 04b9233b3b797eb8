/* The operation of one request: the twin of _http.HttpOperation (the lifecycle and
 * its hook calls, with their error isolation) and of _http.RequestBody.
 */
#include "core.h"

/* ---------------------------------------------------------------- hook calls */

/* Calls every (hook, name, version) of `hooks_tuple` with (op_id, attrs), reporting
 * (never raising) what a hook raises, as _registry._notifier does. A BaseException
 * that is not an Exception (KeyboardInterrupt) is not caught: -1. */
int
notify(CoreState *state, PyObject *hooks_tuple, PyObject *event, PyObject *op_id,
       PyObject *attrs)
{
    if (!PyTuple_Check(hooks_tuple)) {
        PyErr_SetString(PyExc_TypeError, "hooks must be a tuple");
        return -1;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(hooks_tuple);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *bound = PyTuple_GET_ITEM(hooks_tuple, i);
        if (!PyTuple_Check(bound) || PyTuple_GET_SIZE(bound) != 3) {
            PyErr_SetString(PyExc_TypeError, "a hook must be (hook, name, version)");
            return -1;
        }
        PyObject *args[2] = {op_id, attrs};
        PyObject *result = PyObject_Vectorcall(PyTuple_GET_ITEM(bound, 0), args, 2, NULL);
        if (result != NULL) {
            Py_DECREF(result);
            continue;
        }
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return -1;
        }
        PyObject *exc = PyErr_GetRaisedException();
        PyObject *report[4] = {event, PyTuple_GET_ITEM(bound, 1), PyTuple_GET_ITEM(bound, 2), exc};
        PyObject *reported = PyObject_Vectorcall(state->report_hook_error, report, 4, NULL);
        Py_DECREF(exc);
        if (reported == NULL) {
            return -1;
        }
        Py_DECREF(reported);
    }
    return 0;
}

/* ---------------------------------------------------------------- the lifecycle */

/* A new operation of `hooks`, with the start hooks and the request capture (new
 * references) for begin_http. */
Operation *
operation_new(CoreState *state, PyObject *hooks, PyObject **start_hooks,
              PyObject **request_capture)
{
    Snapshot *snapshot = snapshot_of(state, hooks);
    if (snapshot == NULL) {
        return NULL;
    }
    Operation *op = PyObject_GC_New(Operation, state->operation_type);
    if (op == NULL) {
        return NULL;
    }
    op->state = state;
    op->hooks = Py_NewRef(hooks);
    op->end_hooks = Py_NewRef(snapshot->end_hooks);
    op->error_hooks = Py_NewRef(snapshot->error_hooks);
    op->inject_hooks = Py_NewRef(snapshot->inject_hooks);
    op->response_capture = Py_NewRef(snapshot->response_capture);
    *start_hooks = Py_NewRef(snapshot->start_hooks);
    *request_capture = Py_NewRef(snapshot->request_capture);
    PyObject *generate_id = Py_NewRef(snapshot->generate_id);
    op->began_ns = monotonic_ns();
    op->injected = 0;
    op->done = 0;
    op->status_code = 0;
    op->body_size = 0;
    op->route = NULL;
    op->response_headers = NULL;
    op->read_error = NULL;
    op->id = NULL;
    PyObject_GC_Track(op);
    op->id = PyObject_CallNoArgs(generate_id);
    Py_DECREF(generate_id);
    if (op->id == NULL) {
        Py_CLEAR(*start_hooks);
        Py_CLEAR(*request_capture);
        Py_DECREF(op);
        return NULL;
    }
    return op;
}

/* Reports what an inject hook raised (an Exception): 0; anything else stays raised: -1. */
static int
report_inject_error(CoreState *state, PyObject *bound)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *report[4] = {state->s_on_inject, PyTuple_GET_ITEM(bound, 1),
                           PyTuple_GET_ITEM(bound, 2), exc};
    PyObject *reported = PyObject_Vectorcall(state->report_hook_error, report, 4, NULL);
    Py_DECREF(exc);
    Py_XDECREF(reported);
    return reported == NULL ? -1 : 0;
}

/* Twin of _headers.is_token (RFC 9110's tchar): every character of `name` is one. */
static int
is_token(PyObject *name)
{
    static const char *TCHARS = "!#$%&'*+-.^_`|~";
    Py_ssize_t length = PyUnicode_GET_LENGTH(name);
    if (length == 0 || !PyUnicode_IS_ASCII(name)) {
        return 0;
    }
    const unsigned char *text = PyUnicode_1BYTE_DATA(name);
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != 0 && strchr(TCHARS, c) != NULL))) {
            return 0;
        }
    }
    return 1;
}

/* Twin of _registry._valid_header, and not a framing header: a header that goes in. */
static int
acceptable_header(CoreState *state, PyObject *name, PyObject *value, PyObject **lowered)
{
    *lowered = NULL;
    if (!PyUnicode_CheckExact(name) || !PyUnicode_CheckExact(value) ||
        PyUnicode_GET_LENGTH(value) > state->max_header_value || !is_token(name) ||
        PyUnicode_MAX_CHAR_VALUE(value) > 0xff) {
        return 0;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(value);
    const Py_UCS1 *chars = PyUnicode_1BYTE_DATA(value);
    for (Py_ssize_t i = 0; i < length; i++) {
        if (chars[i] == '\r' || chars[i] == '\n' || chars[i] == 0) {
            return 0;
        }
    }
    *lowered = PyObject_CallMethodNoArgs(name, state->s_lower);
    if (*lowered == NULL) {
        return -1;
    }
    int framing = PySet_Contains(state->framing_headers, *lowered);
    if (framing != 0) {
        Py_CLEAR(*lowered);
    }
    return framing < 0 ? -1 : !framing;
}

/* Twin of _registry.merge_injected for a plain dict of acceptable headers, which is
 * what instruments return; anything else (another mapping, a rejected header) goes
 * to the twin itself, which merges and raises the one error message. */
static int
merge_injected(CoreState *state, PyObject *headers, PyObject *returned)
{
    if (PyDict_CheckExact(returned)) {
        PyObject *lowered[32];
        Py_ssize_t count = 0, position = 0;
        PyObject *name, *value;
        int accepted = PyDict_GET_SIZE(returned) <= 32;
        while (accepted > 0 && PyDict_Next(returned, &position, &name, &value)) {
            accepted = acceptable_header(state, name, value, &lowered[count]);
            count += accepted > 0;
        }
        position = 0;
        for (Py_ssize_t i = 0; accepted > 0 && PyDict_Next(returned, &position, &name, &value); i++) {
            if (PyDict_GET_SIZE(headers) < state->max_injected_headers &&
                PyDict_SetDefault(headers, lowered[i], value) == NULL) {
                accepted = -1;
            }
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            Py_DECREF(lowered[i]);
        }
        if (accepted != 0) {
            return accepted < 0 ? -1 : 0;
        }
    }
    PyObject *args[2] = {headers, returned};
    PyObject *merged = PyObject_Vectorcall(state->merge_injected, args, 2, NULL);
    Py_XDECREF(merged);
    return merged == NULL ? -1 : 0;
}

/* Headers to add to the response: the instruments are asked once, then never again.
 * Twin of Hooks.notify_inject: the first to set a header wins; what merge_injected
 * rejects, and what a hook raises, is reported. */
PyObject *
operation_inject(Operation *op)
{
    PyObject *headers = PyDict_New();
    if (headers == NULL || op->injected || op->done) {
        return headers;
    }
    op->injected = 1;
    CoreState *state = op->state;
    Py_ssize_t count = PyTuple_GET_SIZE(op->inject_hooks);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *bound = PyTuple_GET_ITEM(op->inject_hooks, i);
        PyObject *returned = PyObject_CallOneArg(PyTuple_GET_ITEM(bound, 0), op->id);
        int failed = returned == NULL;
        if (returned != NULL && returned != Py_None) {
            failed = merge_injected(state, headers, returned) < 0;
        }
        Py_XDECREF(returned);
        if (failed && report_inject_error(state, bound) < 0) {
            Py_DECREF(headers);
            return NULL;
        }
    }
    return headers;
}

int
operation_respond(Operation *op, long status, PyObject *headers)
{
    op->status_code = status;
    if (op->response_capture == Py_None) {
        return 0;
    }
    PyObject *found = collect_headers(op->state, op->response_capture, headers);
    Py_XSETREF(op->response_headers, found);
    return found == NULL ? -1 : 0;
}

/* Close the operation: the attributes end and error share, for `hooks_tuple` to get; NULL
 * with no error when it was already closed, or when no instrument has such a hook. */
static PyObject *
operation_close(Operation *op, PyObject *hooks_tuple)
{
    if (op->done) {
        return NULL;
    }
    op->done = 1;
    if (PyTuple_GET_SIZE(hooks_tuple) == 0) {
        return NULL;
    }
    CoreState *state = op->state;
    PyObject *attrs = PyDict_New();
    PyObject *duration = PyLong_FromLongLong(monotonic_ns() - op->began_ns);
    if (attrs == NULL || duration == NULL ||
        PyDict_SetItem(attrs, state->s_operation_id, op->id) < 0 ||
        PyDict_SetItem(attrs, state->s_operation_duration, duration) < 0) {
        goto error;
    }
    Py_CLEAR(duration);
    if (op->status_code) {
        PyObject *status = PyLong_FromLong(op->status_code);
        int failed = status == NULL || PyDict_SetItem(attrs, state->s_status_code, status) < 0;
        Py_XDECREF(status);
        if (failed) {
            goto error;
        }
    }
    if (op->route != NULL && PyObject_IsTrue(op->route) > 0 &&
        PyDict_SetItem(attrs, state->s_route, op->route) < 0) {
        goto error;
    }
    return attrs;
error:
    Py_XDECREF(attrs);
    Py_XDECREF(duration);
    return NULL;
}

int
operation_end(Operation *op)
{
    PyObject *attrs = operation_close(op, op->end_hooks);
    if (attrs == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    CoreState *state = op->state;
    PyObject *size = PyLong_FromSsize_t(op->body_size);
    int result = -1;
    if (size != NULL && PyDict_SetItem(attrs, state->s_response_body_size, size) == 0 &&
        (op->response_headers == NULL || PyDict_Update(attrs, op->response_headers) == 0)) {
        result = notify(state, op->end_hooks, state->s_on_end, op->id, attrs);
    }
    Py_XDECREF(size);
    Py_DECREF(attrs);
    return result;
}

/* `exception.stacktrace`: the last max_stacktrace characters of the formatted exception. */
static PyObject *
stacktrace(CoreState *state, PyObject *exc)
{
    PyObject *traceback = PyException_GetTraceback(exc);
    PyObject *args[3] = {(PyObject *)Py_TYPE(exc), exc, traceback ? traceback : Py_None};
    PyObject *lines = PyObject_Vectorcall(state->format_exception, args, 3, NULL);
    Py_XDECREF(traceback);
    if (lines == NULL) {
        return NULL;
    }
    PyObject *stack = PyUnicode_Join(state->s_empty, lines);
    Py_DECREF(lines);
    if (stack == NULL || PyUnicode_GET_LENGTH(stack) <= state->max_stacktrace) {
        return stack;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(stack);
    Py_SETREF(stack, PyUnicode_Substring(stack, length - state->max_stacktrace, length));
    return stack;
}

int
operation_fail(Operation *op, PyObject *error_type, PyObject *message, PyObject *exc)
{
    PyObject *attrs = operation_close(op, op->error_hooks);
    if (attrs == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    CoreState *state = op->state;
    PyObject *kept = PyUnicode_GET_LENGTH(message) <= state->max_message
                         ? Py_NewRef(message)
                         : PyUnicode_Substring(message, 0, state->max_message);
    int result = -1;
    if (kept == NULL || PyDict_SetItem(attrs, state->s_error_type, error_type) < 0 ||
        PyDict_SetItem(attrs, state->s_error_message, kept) < 0) {
        goto done;
    }
    if (exc != NULL && exc != Py_None) {
        PyObject *stack = stacktrace(state, exc);
        if (stack == NULL || PyDict_SetItem(attrs, state->s_stacktrace, stack) < 0) {
            Py_XDECREF(stack);
            goto done;
        }
        Py_DECREF(stack);
    }
    result = notify(state, op->error_hooks, state->s_on_error, op->id, attrs);
done:
    Py_XDECREF(kept);
    Py_DECREF(attrs);
    return result;
}

/* Twin of _http._caused_by: `exc` is `cause`, or came from it (10 links deep). */
static int
caused_by(PyObject *exc, PyObject *cause)
{
    PyObject *link = Py_NewRef(exc);
    for (int depth = 0; depth < 10 && link != NULL; depth++) {
        if (link == cause) {
            Py_DECREF(link);
            return 1;
        }
        PyObject *next = PyException_GetCause(link);
        if (next == NULL) {
            next = PyException_GetContext(link);
        }
        Py_SETREF(link, next);
    }
    Py_XDECREF(link);
    return 0;
}

/* Twin of _http._body_error_type: what reading the request body raising `exc` says. */
static PyObject *
body_error_type(CoreState *state, PyObject *exc)
{
    if (PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError)) {
        return Py_NewRef(state->s_client_disconnected);
    }
    if (PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_TypeError) ||
        PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_ValueError)) {
        return PyObject_GetAttrString((PyObject *)Py_TYPE(exc), "__qualname__");
    }
    return Py_NewRef(state->s_parse_error);
}

int
operation_fail_with(Operation *op, PyObject *exc, int client_gone)
{
    if (op->done) {
        return 0; /* nothing to report: save formatting the message */
    }
    CoreState *state = op->state;
    PyObject *error_type;
    if (client_gone) {
        error_type = Py_NewRef(state->s_client_disconnected);
    }
    else if (op->read_error != NULL && caused_by(exc, op->read_error)) {
        error_type = body_error_type(state, exc == op->read_error ? exc : op->read_error);
    }
    else {
        error_type = PyObject_GetAttrString((PyObject *)Py_TYPE(exc), "__qualname__");
    }
    if (error_type == NULL) {
        return -1;
    }
    PyObject *message = PyObject_Str(exc);
    if (message != NULL && PyUnicode_GET_LENGTH(message) == 0) {
        Py_SETREF(message, PyObject_GetAttrString((PyObject *)Py_TYPE(exc), "__name__"));
    }
    int result = message == NULL ? -1 : operation_fail(op, error_type, message, exc);
    Py_DECREF(error_type);
    Py_XDECREF(message);
    return result;
}

/* End; or, when the framework turned exception `handled` into a 5xx, fail with it. */
int
operation_complete(Operation *op, PyObject *handled)
{
    if (handled != NULL && PyExceptionInstance_Check(handled) && op->status_code >= 500) {
        return operation_fail_with(op, handled, 0);
    }
    return operation_end(op);
}

/* Twin of _http.omits_body: no content in answers to HEAD, nor in 1xx, 204, 304. */
int
omits_body(CoreState *state, PyObject *method, long status)
{
    int head = PyUnicode_Check(method) && PyUnicode_Compare(method, state->s_head) == 0;
    return head || status == 204 || status == 304 || (status >= 100 && status < 200);
}

/* ---------------------------------------------------------------- Python methods */

static PyObject *
operation_py_inject(Operation *op, PyObject *unused)
{
    return operation_inject(op);
}

static PyObject *
operation_py_respond(Operation *op, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "respond(status_code, headers)");
        return NULL;
    }
    long status = 0;
    if (PyLong_Check(args[0])) {
        status = PyLong_AsLong(args[0]);
        if (status == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (operation_respond(op, status, args[1]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
operation_py_end(Operation *op, PyObject *unused)
{
    if (operation_end(op) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
operation_py_fail(Operation *op, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || nargs > 3 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "fail(error_type: str, message: str, exc=None)");
        return NULL;
    }
    if (operation_fail(op, args[0], args[1], nargs == 3 ? args[2] : NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
operation_py_fail_with(Operation *op, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames)
{
    Py_ssize_t given = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    if (nargs < 1 || given > 2 || !PyExceptionInstance_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "fail_with(exc, client_gone=False)");
        return NULL;
    }
    int client_gone = given == 2 ? PyObject_IsTrue(args[1]) : 0;
    if (client_gone < 0 || operation_fail_with(op, args[0], client_gone) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
operation_py_complete(Operation *op, PyObject *const *args, Py_ssize_t nargs)
{
    if (operation_complete(op, nargs > 0 ? args[0] : NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef operation_methods[] = {
    {"inject", (PyCFunction)operation_py_inject, METH_NOARGS,
     "Headers to add to the response; asks the instruments once, then never again."},
    {"respond", (PyCFunction)(void (*)(void))operation_py_respond, METH_FASTCALL,
     "Record the response status and the captured response headers."},
    {"end", (PyCFunction)operation_py_end, METH_NOARGS, NULL},
    {"fail", (PyCFunction)(void (*)(void))operation_py_fail, METH_FASTCALL, NULL},
    {"fail_with", (PyCFunction)(void (*)(void))operation_py_fail_with,
     METH_FASTCALL | METH_KEYWORDS, "Report `exc`, by the one table of error types."},
    {"complete", (PyCFunction)(void (*)(void))operation_py_complete, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyObject *
operation_get_done(Operation *op, void *closure)
{
    return PyBool_FromLong(op->done);
}

static PyObject *
operation_get_status_code(Operation *op, void *closure)
{
    return PyLong_FromLong(op->status_code);
}

static PyObject *
operation_get_body_size(Operation *op, void *closure)
{
    return PyLong_FromSsize_t(op->body_size);
}

static int
operation_set_body_size(Operation *op, PyObject *value, void *closure)
{
    Py_ssize_t size = value == NULL ? -1 : PyLong_AsSsize_t(value);
    if (size == -1 && (value == NULL || PyErr_Occurred())) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "body_size must be an int");
        }
        return -1;
    }
    op->body_size = size;
    return 0;
}

static PyObject *
operation_get_object(PyObject *value)
{
    return Py_NewRef(value != NULL ? value : Py_None);
}

static PyObject *
operation_get_route(Operation *op, void *closure)
{
    return operation_get_object(op->route);
}

static int
operation_set_route(Operation *op, PyObject *value, void *closure)
{
    Py_XSETREF(op->route, value == Py_None ? NULL : Py_XNewRef(value));
    return 0;
}

static PyObject *
operation_get_read_error(Operation *op, void *closure)
{
    return operation_get_object(op->read_error);
}

static int
operation_set_read_error(Operation *op, PyObject *value, void *closure)
{
    Py_XSETREF(op->read_error, value == Py_None ? NULL : Py_XNewRef(value));
    return 0;
}

static PyObject *
operation_get_response_headers(Operation *op, void *closure)
{
    return operation_get_object(op->response_headers);
}

static PyGetSetDef operation_getset[] = {
    {"done", (getter)operation_get_done, NULL, NULL, NULL},
    {"status_code", (getter)operation_get_status_code, NULL, NULL, NULL},
    {"body_size", (getter)operation_get_body_size, (setter)operation_set_body_size, NULL, NULL},
    {"route", (getter)operation_get_route, (setter)operation_set_route, NULL, NULL},
    {"read_error", (getter)operation_get_read_error, (setter)operation_set_read_error, NULL, NULL},
    {"response_headers", (getter)operation_get_response_headers, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef operation_members[] = {
    {"id", T_OBJECT_EX, offsetof(Operation, id), READONLY, NULL},
    {"hooks", T_OBJECT_EX, offsetof(Operation, hooks), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static int
operation_traverse(Operation *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(op->hooks);
    Py_VISIT(op->end_hooks);
    Py_VISIT(op->error_hooks);
    Py_VISIT(op->inject_hooks);
    Py_VISIT(op->response_capture);
    Py_VISIT(op->route);
    Py_VISIT(op->response_headers);
    Py_VISIT(op->read_error);
    return 0;
}

static int
operation_clear(Operation *op)
{
    Py_CLEAR(op->hooks);
    Py_CLEAR(op->end_hooks);
    Py_CLEAR(op->error_hooks);
    Py_CLEAR(op->inject_hooks);
    Py_CLEAR(op->response_capture);
    Py_CLEAR(op->route);
    Py_CLEAR(op->response_headers);
    Py_CLEAR(op->read_error);
    return 0;
}

static void
operation_dealloc(Operation *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    operation_clear(op);
    Py_CLEAR(op->id);
    type->tp_free(op);
    Py_DECREF(type);
}

static PyType_Slot operation_slots[] = {
    {Py_tp_doc, "One request's telemetry state; the only place its lifecycle is enforced."},
    {Py_tp_methods, operation_methods},
    {Py_tp_getset, operation_getset},
    {Py_tp_members, operation_members},
    {Py_tp_traverse, operation_traverse},
    {Py_tp_clear, operation_clear},
    {Py_tp_dealloc, operation_dealloc},
    {0, NULL},
};

PyType_Spec operation_spec = {
    .name = "hooktel._core.compiled.HttpOperation",
    .basicsize = sizeof(Operation),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = operation_slots,
};

/* ---------------------------------------------------------------- RequestBody */

typedef struct {
    PyObject_HEAD
    PyObject *stream;
    Operation *op;
} RequestBody;

PyObject *
request_body_new(CoreState *state, PyObject *stream, Operation *op)
{
    RequestBody *body = PyObject_GC_New(RequestBody, state->request_body_type);
    if (body == NULL) {
        return NULL;
    }
    body->stream = Py_NewRef(stream);
    body->op = (Operation *)Py_NewRef(op);
    PyObject_GC_Track(body);
    return (PyObject *)body;
}

/* Calls stream.<method>(*args); what it raises is noted on the operation first. */
static PyObject *
request_body_noting(RequestBody *body, PyObject *method, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *call[4] = {body->stream};
    if (nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "too many arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        call[1 + i] = args[i];
    }
    PyObject *result = PyObject_VectorcallMethod(method, call, 1 + nargs, NULL);
    if (result == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyObject *exc = PyErr_GetRaisedException();
        Py_XSETREF(body->op->read_error, Py_NewRef(exc));
        PyErr_SetRaisedException(exc);
    }
    return result;
}

static PyObject *
request_body_read(RequestBody *body, PyObject *const *args, Py_ssize_t nargs)
{
    return request_body_noting(body, body->op->state->s_read, args, nargs);
}

static PyObject *
request_body_readline(RequestBody *body, PyObject *const *args, Py_ssize_t nargs)
{
    return request_body_noting(body, body->op->state->s_readline, args, nargs);
}

static PyObject *
request_body_readlines(RequestBody *body, PyObject *const *args, Py_ssize_t nargs)
{
    return request_body_noting(body, body->op->state->s_readlines, args, nargs);
}

static PyObject *
request_body_next(RequestBody *body)
{
    PyObject *line = request_body_noting(body, body->op->state->s_readline, NULL, 0);
    if (line == NULL) {
        return NULL;
    }
    int more = PyObject_IsTrue(line);
    if (more <= 0) {
        Py_DECREF(line);
        return NULL; /* end of the body: StopIteration (or the truth test's error) */
    }
    return line;
}

static PyObject *
request_body_getattro(RequestBody *body, PyObject *name)
{
    PyObject *found = PyObject_GenericGetAttr((PyObject *)body, name);
    if (found != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) {
        return found;
    }
    PyErr_Clear();
    return PyObject_GetAttr(body->stream, name);
}

static PyMethodDef request_body_methods[] = {
    {"read", (PyCFunction)(void (*)(void))request_body_read, METH_FASTCALL, NULL},
    {"readline", (PyCFunction)(void (*)(void))request_body_readline, METH_FASTCALL, NULL},
    {"readlines", (PyCFunction)(void (*)(void))request_body_readlines, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static int
request_body_traverse(RequestBody *body, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(body));
    Py_VISIT(body->stream);
    Py_VISIT(body->op);
    return 0;
}

static int
request_body_clear(RequestBody *body)
{
    Py_CLEAR(body->stream);
    Py_CLEAR(body->op);
    return 0;
}

static void
request_body_dealloc(RequestBody *body)
{
    PyTypeObject *type = Py_TYPE(body);
    PyObject_GC_UnTrack(body);
    request_body_clear(body);
    type->tp_free(body);
    Py_DECREF(type);
}

static PyType_Slot request_body_slots[] = {
    {Py_tp_doc, "Stands in for a request body stream; notes what a read raises."},
    {Py_tp_methods, request_body_methods},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, request_body_next},
    {Py_tp_getattro, request_body_getattro},
    {Py_tp_traverse, request_body_traverse},
    {Py_tp_clear, request_body_clear},
    {Py_tp_dealloc, request_body_dealloc},
    {0, NULL},
};

PyType_Spec request_body_spec = {
    .name = "hooktel._core.compiled.RequestBody",
    .basicsize = sizeof(RequestBody),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = request_body_slots,
};
