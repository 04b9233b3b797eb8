/* The WSGI hook point: the twin of wsgi.py.
 *
 *   WsgiMiddleware  TelemetryMiddleware: with nothing attached it calls the app;
 *   WsgiRequest     _Request: the operation, `start_response` and `write`;
 *   WsgiResponse    _Response: wraps the app's iterable, counts its bytes and
 *                   reports the end from `close()`, as PEP 3333 servers call it.
 */
#include "core.h"

typedef struct {
    PyObject_HEAD
    CoreState *state;
    Operation *op;
    PyObject *environ;
    PyObject *start_response; /* the server's */
    PyObject *write;          /* the server's, once start_response was called */
    PyObject *injected;       /* list of (name, value) pairs, asked for once */
    char counts_body;
} WsgiRequest;

typedef struct {
    PyObject_HEAD
    WsgiRequest *request;
    PyObject *iterable;
    PyObject *iterator;
    char exhausted;
} WsgiResponse;

/* ---------------------------------------------------------------- environ lookups */

/* environ.get(key): a new reference, or NULL with no error when absent. */
static PyObject *
environ_get(PyObject *environ, PyObject *key)
{
    if (PyDict_Check(environ)) {
        return Py_XNewRef(PyDict_GetItemWithError(environ, key));
    }
    PyObject *value = PyObject_GetItem(environ, key);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
    }
    return value;
}

/* environ.get(key, fallback): a new reference; NULL on error only. */
static PyObject *
environ_get_or(PyObject *environ, PyObject *key, PyObject *fallback)
{
    PyObject *value = environ_get(environ, key);
    if (value == NULL && !PyErr_Occurred()) {
        value = Py_NewRef(fallback);
    }
    return value;
}

/* decimal(str(environ.get(key, ""))): a new int, or NULL with no error when not digits. */
static PyObject *
environ_decimal(CoreState *state, PyObject *environ, PyObject *key)
{
    PyObject *value = environ_get_or(environ, key, state->s_empty);
    PyObject *text = value ? PyObject_Str(value) : NULL;
    Py_XDECREF(value);
    if (text == NULL) {
        return NULL;
    }
    long number;
    PyObject *result = NULL;
    if (decimal_value(text, &number) > 0) {
        result = number == LONG_MAX ? PyLong_FromUnicodeObject(text, 10) : PyLong_FromLong(number);
    }
    Py_DECREF(text);
    return result;
}

static int
is_truthy_or_absent(PyObject *value, int *truthy)
{
    *truthy = value == NULL ? 0 : PyObject_IsTrue(value);
    return *truthy < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------- the request's fields */

/* Appends (name, environ[key]) for each (key, name) of `wanted` that was sent. */
static int
append_environ_headers(CoreState *state, PyObject *environ, PyObject *wanted, PyObject *pairs)
{
    Py_ssize_t count = PyTuple_GET_SIZE(wanted);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *entry = PyTuple_GET_ITEM(wanted, i);
        PyObject *key = PyTuple_GET_ITEM(entry, 0);
        PyObject *value = environ_get(environ, key);
        if (value == NULL) {
            if (PyErr_Occurred()) {
                return -1;
            }
            continue;
        }
        /* A header sent empty is still a header; an empty CONTENT_TYPE or
         * CONTENT_LENGTH is how CGI says it was not sent. */
        int truthy;
        if (is_truthy_or_absent(value, &truthy) < 0) {
            Py_DECREF(value);
            return -1;
        }
        if (truthy || PyUnicode_Tailmatch(key, state->s_http_prefix, 0, 5, -1) == 1) {
            PyObject *pair = PyTuple_Pack(2, PyTuple_GET_ITEM(entry, 1), value);
            if (pair == NULL || PyList_Append(pairs, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(value);
                return -1;
            }
            Py_DECREF(pair);
        }
        Py_DECREF(value);
    }
    return 0;
}

/* Twin of wsgi._environ_headers: the headers hooktel reads, looked up by CGI key. */
static PyObject *
environ_headers(CoreState *state, PyObject *environ, PyObject *capture)
{
    PyObject *pairs = PyList_New(0);
    if (pairs == NULL || append_environ_headers(state, environ, state->cgi_scanned_keys, pairs) < 0) {
        Py_XDECREF(pairs);
        return NULL;
    }
    if (capture != Py_None) {
        PyObject *extra = PyObject_GetAttr(capture, state->s_cgi_keys);
        int failed = extra == NULL || !PyTuple_Check(extra) ||
                     append_environ_headers(state, environ, extra, pairs) < 0;
        Py_XDECREF(extra);
        if (failed) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "HeaderCapture.cgi_keys must be a tuple");
            }
            Py_DECREF(pairs);
            return NULL;
        }
    }
    return pairs;
}

/* Twin of wsgi._target: the request-target as sent, without its query. */
static PyObject *
environ_target(CoreState *state, PyObject *environ)
{
    PyObject *raw = environ_get(environ, state->s_raw_uri);
    int truthy;
    if ((raw == NULL && PyErr_Occurred()) || is_truthy_or_absent(raw, &truthy) < 0) {
        Py_XDECREF(raw);
        return NULL;
    }
    if (!truthy) {
        Py_XSETREF(raw, environ_get(environ, state->s_request_uri));
        if (raw == NULL && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (raw != NULL && PyUnicode_Check(raw) && PyUnicode_GET_LENGTH(raw) > 0) {
        Py_ssize_t length = PyUnicode_GET_LENGTH(raw);
        Py_ssize_t question = PyUnicode_FindChar(raw, '?', 0, length, 1);
        PyObject *target = question == -2   ? NULL
                           : question < 0 ? Py_NewRef(raw)
                                          : PyUnicode_Substring(raw, 0, question);
        Py_DECREF(raw);
        return target;
    }
    Py_XDECREF(raw);
    PyObject *script = environ_get_or(environ, state->s_script_name, state->s_empty);
    PyObject *info = script ? environ_get_or(environ, state->s_path_info, state->s_empty) : NULL;
    PyObject *joined = info ? PyNumber_Add(script, info) : NULL;
    Py_XDECREF(script);
    Py_XDECREF(info);
    PyObject *path = joined ? PyObject_Str(joined) : NULL;
    Py_XDECREF(joined);
    if (path != NULL && PyUnicode_GET_LENGTH(path) == 0) {
        Py_SETREF(path, Py_NewRef(state->s_slash));
    }
    return path;
}

/* Twins of wsgi._server and wsgi._client: (environ[address_key], the digits of
 * environ[port_key]), the port None when `optional_port` and not given. NULL with no
 * error when there is no such peer. */
static PyObject *
environ_peer(CoreState *state, PyObject *environ, PyObject *address_key, PyObject *port_key,
             int optional_port)
{
    PyObject *address = environ_get(environ, address_key);
    if (address == NULL) {
        return NULL;
    }
    int truthy = PyObject_IsTrue(address);
    PyObject *port = truthy > 0 ? environ_decimal(state, environ, port_key) : NULL;
    PyObject *result = NULL;
    if (truthy > 0 && !PyErr_Occurred() && (port != NULL || optional_port)) {
        result = PyTuple_Pack(2, address, port != NULL ? port : Py_None);
    }
    Py_DECREF(address);
    Py_XDECREF(port);
    return result;
}

/* Twin of wsgi._has_body. */
static int
has_body(CoreState *state, PyObject *environ)
{
    PyObject *chunked = environ_get(environ, state->s_transfer_encoding_key);
    int truthy;
    if ((chunked == NULL && PyErr_Occurred()) || is_truthy_or_absent(chunked, &truthy) < 0) {
        Py_XDECREF(chunked);
        return -1;
    }
    Py_XDECREF(chunked);
    if (truthy) {
        return 1;
    }
    PyObject *length = environ_get(environ, state->s_content_length_key);
    if (length == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    int body = 1;
    if (PyUnicode_Check(length)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(length);
        body = !(n == 0 || (n == 1 && PyUnicode_READ_CHAR(length, 0) == '0'));
    }
    Py_DECREF(length);
    return body;
}

/* Twin of _Request.__init__'s begin_http call. */
static Operation *
begin_from_environ(CoreState *state, PyObject *hooks, PyObject *environ)
{
    Operation *op = NULL;
    Snapshot *snapshot = snapshot_of(state, hooks);
    PyObject *capture = snapshot ? Py_NewRef(snapshot->request_capture) : NULL;
    PyObject *method = capture ? environ_get_or(environ, state->s_request_method, state->s_get) : NULL;
    PyObject *scheme = method ? environ_get_or(environ, state->s_url_scheme_key, state->s_http) : NULL;
    PyObject *path = scheme ? environ_target(state, environ) : NULL;
    PyObject *query = path ? environ_get_or(environ, state->s_query_string_key, state->s_empty) : NULL;
    PyObject *headers = query ? environ_headers(state, environ, capture) : NULL;
    PyObject *server = NULL, *client = NULL, *version = NULL, *protocol = NULL;
    if (headers == NULL) {
        goto done;
    }
    server = environ_peer(state, environ, state->s_server_name, state->s_server_port_key, 0);
    if (server == NULL && PyErr_Occurred()) {
        goto done;
    }
    client = environ_peer(state, environ, state->s_remote_addr, state->s_remote_port, 1);
    if (client == NULL && PyErr_Occurred()) {
        goto done;
    }
    version = environ_get_or(environ, state->s_server_protocol, state->s_empty);
    if (version == NULL) {
        goto done;
    }
    if (PyUnicode_Check(version) && PyUnicode_Tailmatch(version, state->s_http_slash, 0, 5, -1) == 1) {
        protocol = PyUnicode_Substring(version, 5, PyUnicode_GET_LENGTH(version));
    }
    else {
        protocol = Py_NewRef(version);
    }
    if (protocol == NULL) {
        goto done;
    }
    RequestFields fields = {method, scheme, path, query, headers, server, client, protocol};
    op = begin_http(state, hooks, &fields);
done:
    Py_XDECREF(capture);
    Py_XDECREF(method);
    Py_XDECREF(scheme);
    Py_XDECREF(path);
    Py_XDECREF(query);
    Py_XDECREF(headers);
    Py_XDECREF(server);
    Py_XDECREF(client);
    Py_XDECREF(version);
    Py_XDECREF(protocol);
    return op;
}

/* ---------------------------------------------------------------- the request */

/* Twin of _Request.note_route. */
static int
note_route(WsgiRequest *request)
{
    PyObject *route = environ_get(request->environ, request->state->s_route_key);
    if (route == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (PyUnicode_Check(route)) {
        Py_XSETREF(request->op->route, route);
    }
    else {
        Py_DECREF(route);
    }
    return 0;
}

/* note_route(), then fail_with(exc): with the exception kept set for the caller. */
static void
report_raised(WsgiRequest *request)
{
    PyObject *exc = PyErr_GetRaisedException();
    if (note_route(request) < 0 || operation_fail_with(request->op, exc, 0) < 0) {
        Py_DECREF(exc);
        return;
    }
    PyErr_SetRaisedException(exc);
}

static PyObject *
wsgi_write(WsgiRequest *request, PyObject *data)
{
    if (request->write == NULL) {
        PyErr_SetString(PyExc_AssertionError, "write() called before start_response()");
        return NULL;
    }
    PyObject *written = PyObject_CallOneArg(request->write, data);
    if (written == NULL) {
        if (PyErr_ExceptionMatches(PyExc_OSError)) {
            PyObject *exc = PyErr_GetRaisedException();
            if (operation_fail_with(request->op, exc, 1) < 0) {
                Py_DECREF(exc);
                return NULL;
            }
            PyErr_SetRaisedException(exc);
        }
        return NULL;
    }
    Py_DECREF(written);
    if (request->counts_body) {
        Py_ssize_t size = PyObject_Length(data);
        if (size < 0) {
            return NULL;
        }
        request->op->body_size += size;
    }
    Py_RETURN_NONE;
}

static PyMethodDef wsgi_write_def = {"write", (PyCFunction)wsgi_write, METH_O, NULL};

/* Twin of _Request.start_response. */
static PyObject *
wsgi_start_response(WsgiRequest *request, PyObject *const *args, Py_ssize_t nargs)
{
    CoreState *state = request->state;
    Operation *op = request->op;
    if (nargs < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "start_response(status, headers, exc_info=None)");
        return NULL;
    }
    PyObject *status = args[0], *headers = args[1];
    PyObject *exc_info = nargs == 3 ? args[2] : Py_None;
    long code = 0;
    PyObject *code_text = PySequence_GetSlice(status, 0, 3);
    if (code_text == NULL) {
        return NULL;
    }
    if (decimal_value(code_text, &code) <= 0) {
        code = 0;
    }
    Py_DECREF(code_text);
    PyObject *pairs = op->response_capture != Py_None
                          ? PyObject_CallOneArg(state->header_pairs, headers)
                          : PyTuple_New(0);
    if (pairs == NULL) {
        return NULL;
    }
    int responded = operation_respond(op, code, pairs);
    Py_DECREF(pairs);
    if (responded < 0) {
        return NULL;
    }
    PyObject *method = environ_get_or(request->environ, state->s_request_method, state->s_get);
    if (method == NULL) {
        return NULL;
    }
    request->counts_body = !omits_body(state, method, code);
    Py_DECREF(method);
    if (request->injected == NULL) { /* a second call (with exc_info) reuses the first answer */
        PyObject *injected = operation_inject(op);
        if (injected == NULL) {
            return NULL;
        }
        request->injected = PyDict_Check(injected) ? PyDict_Items(injected) : PyList_New(0);
        Py_DECREF(injected);
        if (request->injected == NULL) {
            return NULL;
        }
    }
    PyObject *sent_headers;
    if (PyList_GET_SIZE(request->injected) > 0) {
        sent_headers = PySequence_List(headers);
        if (sent_headers == NULL) {
            return NULL;
        }
        Py_ssize_t count = PyList_GET_SIZE(request->injected);
        for (Py_ssize_t i = 0; i < count; i++) {
            if (PyList_Append(sent_headers, PyList_GET_ITEM(request->injected, i)) < 0) {
                Py_DECREF(sent_headers);
                return NULL;
            }
        }
    }
    else {
        sent_headers = Py_NewRef(headers);
    }
    PyObject *call[3] = {status, sent_headers, exc_info};
    PyObject *write = PyObject_Vectorcall(request->start_response, call,
                                          exc_info == Py_None ? 2 : 3, NULL);
    Py_DECREF(sent_headers);
    if (write == NULL) {
        return NULL;
    }
    Py_XSETREF(request->write, write);
    return PyCFunction_New(&wsgi_write_def, (PyObject *)request);
}

static PyMethodDef wsgi_start_response_def = {
    "start_response", (PyCFunction)(void (*)(void))wsgi_start_response, METH_FASTCALL, NULL};

static int
wsgi_request_traverse(WsgiRequest *request, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(request));
    Py_VISIT(request->op);
    Py_VISIT(request->environ);
    Py_VISIT(request->start_response);
    Py_VISIT(request->write);
    Py_VISIT(request->injected);
    return 0;
}

static int
wsgi_request_clear(WsgiRequest *request)
{
    Py_CLEAR(request->op);
    Py_CLEAR(request->environ);
    Py_CLEAR(request->start_response);
    Py_CLEAR(request->write);
    Py_CLEAR(request->injected);
    return 0;
}

static void
wsgi_request_dealloc(WsgiRequest *request)
{
    PyTypeObject *type = Py_TYPE(request);
    PyObject_GC_UnTrack(request);
    wsgi_request_clear(request);
    type->tp_free(request);
    Py_DECREF(type);
}

static PyType_Slot wsgi_request_slots[] = {
    {Py_tp_doc, "One request's wrapped start_response and write, and its operation."},
    {Py_tp_traverse, wsgi_request_traverse},
    {Py_tp_clear, wsgi_request_clear},
    {Py_tp_dealloc, wsgi_request_dealloc},
    {0, NULL},
};

PyType_Spec wsgi_request_spec = {
    .name = "hooktel._core.compiled.WsgiRequest",
    .basicsize = sizeof(WsgiRequest),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = wsgi_request_slots,
};

/* ---------------------------------------------------------------- the response */

static PyObject *
wsgi_response_iter(WsgiResponse *response)
{
    PyObject *iterator = PyObject_GetIter(response->iterable);
    if (iterator == NULL) {
        return NULL;
    }
    Py_XSETREF(response->iterator, iterator);
    return Py_NewRef(response);
}

static PyObject *
wsgi_response_next(WsgiResponse *response)
{
    WsgiRequest *request = response->request;
    if (response->iterator == NULL) {
        PyErr_SetString(PyExc_AssertionError, "next() before iter()");
        return NULL;
    }
    PyObject *chunk = PyIter_Next(response->iterator);
    if (chunk == NULL) {
        if (!PyErr_Occurred()) {
            response->exhausted = 1;
        }
        else if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
            response->exhausted = 1; /* an iterator raising StopIteration itself */
        }
        else {
            report_raised(request);
        }
        return NULL;
    }
    if (request->counts_body) {
        Py_ssize_t size = PyObject_Length(chunk);
        if (size < 0) {
            Py_DECREF(chunk);
            return NULL;
        }
        request->op->body_size += size;
    }
    return chunk;
}

/* Twin of _Response.close: the end (or the error) of the operation. */
static PyObject *
wsgi_response_close(WsgiResponse *response, PyObject *unused)
{
    WsgiRequest *request = response->request;
    CoreState *state = request->state;
    Operation *op = request->op;
    PyObject *close = PyObject_GetAttr(response->iterable, state->s_close);
    if (close == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return NULL; /* getattr() failing: before the twin's `try` */
        }
        PyErr_Clear();
    }
    int failed = 0;
    if (close != NULL) {
        PyObject *closed = PyObject_CallNoArgs(close);
        Py_DECREF(close);
        if (closed == NULL) {
            failed = 1;
            report_raised(request);
        }
        Py_XDECREF(closed);
    }
    /* finally: what the twin's `finally` does, with the exception (if any) kept */
    if (!op->done) {
        PyObject *exc = failed ? PyErr_GetRaisedException() : NULL;
        int reported = note_route(request);
        if (reported == 0) {
            if (response->exhausted) {
                PyObject *handled = environ_get(request->environ, state->s_exception_key);
                reported = PyErr_Occurred() ? -1 : operation_complete(op, handled);
                Py_XDECREF(handled);
            }
            else {
                reported = operation_fail(op, state->s_client_disconnected, state->s_closed_early,
                                          NULL);
            }
        }
        if (reported < 0) {
            Py_XDECREF(exc);
            return NULL;
        }
        if (exc != NULL) {
            PyErr_SetRaisedException(exc);
        }
    }
    if (failed) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef wsgi_response_methods[] = {
    {"close", (PyCFunction)wsgi_response_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static int
wsgi_response_traverse(WsgiResponse *response, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(response));
    Py_VISIT(response->request);
    Py_VISIT(response->iterable);
    Py_VISIT(response->iterator);
    return 0;
}

static int
wsgi_response_clear(WsgiResponse *response)
{
    Py_CLEAR(response->request);
    Py_CLEAR(response->iterable);
    Py_CLEAR(response->iterator);
    return 0;
}

static void
wsgi_response_dealloc(WsgiResponse *response)
{
    PyTypeObject *type = Py_TYPE(response);
    PyObject_GC_UnTrack(response);
    wsgi_response_clear(response);
    type->tp_free(response);
    Py_DECREF(type);
}

static PyType_Slot wsgi_response_slots[] = {
    {Py_tp_doc, "Wraps the app's iterable: counts bytes, and reports the end from close()."},
    {Py_tp_iter, wsgi_response_iter},
    {Py_tp_iternext, wsgi_response_next},
    {Py_tp_methods, wsgi_response_methods},
    {Py_tp_traverse, wsgi_response_traverse},
    {Py_tp_clear, wsgi_response_clear},
    {Py_tp_dealloc, wsgi_response_dealloc},
    {0, NULL},
};

PyType_Spec wsgi_response_spec = {
    .name = "hooktel._core.compiled.WsgiResponse",
    .basicsize = sizeof(WsgiResponse),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = wsgi_response_slots,
};

/* ---------------------------------------------------------------- the middleware */

/* Twin of _Request.__init__ and _Request.run. */
static PyObject *
wsgi_request_run(CoreState *state, PyObject *hooks, PyObject *app, PyObject *environ,
                 PyObject *start_response)
{
    WsgiRequest *request = PyObject_GC_New(WsgiRequest, state->wsgi_request_type);
    if (request == NULL) {
        return NULL;
    }
    request->state = state;
    request->op = NULL;
    request->environ = Py_NewRef(environ);
    request->start_response = Py_NewRef(start_response);
    request->write = NULL;
    request->injected = NULL;
    request->counts_body = 1;
    PyObject_GC_Track(request);
    PyObject *result = NULL, *wrapped_start = NULL;
    request->op = begin_from_environ(state, hooks, environ);
    if (request->op == NULL ||
        PyObject_SetItem(environ, state->s_operation_key, request->op->id) < 0) {
        goto done;
    }
    int body = has_body(state, environ);
    if (body < 0) {
        goto done;
    }
    if (body) {
        PyObject *stream = environ_get(environ, state->s_wsgi_input);
        if (stream == NULL && PyErr_Occurred()) {
            goto done;
        }
        if (stream != NULL) {
            PyObject *wrapped = request_body_new(state, stream, request->op);
            Py_DECREF(stream);
            int set = wrapped == NULL ? -1 : PyObject_SetItem(environ, state->s_wsgi_input, wrapped);
            Py_XDECREF(wrapped);
            if (set < 0) {
                goto done;
            }
        }
    }
    wrapped_start = PyCFunction_New(&wsgi_start_response_def, (PyObject *)request);
    if (wrapped_start == NULL) {
        goto done;
    }
    PyObject *args[2] = {environ, wrapped_start};
    PyObject *iterable = PyObject_Vectorcall(app, args, 2, NULL);
    if (iterable == NULL) {
        report_raised(request);
        goto done;
    }
    WsgiResponse *response = PyObject_GC_New(WsgiResponse, state->wsgi_response_type);
    if (response == NULL) {
        Py_DECREF(iterable);
        goto done;
    }
    response->request = (WsgiRequest *)Py_NewRef(request);
    response->iterable = iterable;
    response->iterator = NULL;
    response->exhausted = 0;
    PyObject_GC_Track(response);
    result = (PyObject *)response;
done:
    Py_XDECREF(wrapped_start);
    Py_DECREF(request);
    return result;
}

/* Every call of the WSGI middleware with an environ and start_response is a request. */
static int
is_wsgi_call(CoreState *state, PyObject *const *args)
{
    return 1;
}

static PyObject *
wsgi_run(CoreState *state, int kind, PyObject *hooks, PyObject *app, PyObject *const *args)
{
    return wsgi_request_run(state, hooks, app, args[0], args[1]);
}

static PyObject *
wsgi_middleware_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                           PyObject *kwnames)
{
    return middleware_call((Middleware *)self, args, nargsf, kwnames, 2, is_wsgi_call, wsgi_run);
}

static PyObject *
wsgi_middleware_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return middleware_new(type, args, kwargs, wsgi_middleware_vectorcall);
}

static PyType_Slot wsgi_middleware_slots[] = {
    {Py_tp_doc, "Reports each request of the wrapped app to the attached HTTP instruments "
                "(the compiled twin of hooktel.wsgi's Python middleware)."},
    {Py_tp_new, wsgi_middleware_new},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, middleware_members},
    {Py_tp_traverse, middleware_traverse},
    {Py_tp_clear, middleware_clear},
    {Py_tp_dealloc, middleware_dealloc},
    {0, NULL},
};

PyType_Spec wsgi_middleware_spec = {
    .name = "hooktel.wsgi.TelemetryMiddleware",
    .basicsize = sizeof(Middleware),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = wsgi_middleware_slots,
};
