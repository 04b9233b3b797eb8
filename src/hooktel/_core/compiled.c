/* hooktel._core.compiled: the native hook core.
 *
 * The compiled twin of hooktel's Python hook layer (see core.h for its files). The
 * Python modules are the specification: every type and function here has a Python
 * twin it is tested against (tests/native/), and HOOKTEL_PURE_PYTHON=1 runs the twin
 * instead. The core is stdlib-only: it knows nothing of spans. What it needs from the
 * Python side (the registry's list of hooks, the error reporter, the size caps) it is
 * given once, by configure(), so that each value has one source of truth.
 */
#include "core.h"
#include <time.h>

CoreState *
core_state_of_type(PyTypeObject *type)
{
    /* A subclass (of the middlewares) finds the module through its base. */
    extern struct PyModuleDef core_module;
    PyObject *module = PyType_GetModuleByDef(type, &core_module);
    return module == NULL ? NULL : PyModule_GetState(module);
}

int64_t
monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

int64_t
wall_clock_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static void
snapshot_clear(Snapshot *snapshot)
{
    Py_CLEAR(snapshot->hooks);
    Py_CLEAR(snapshot->start_hooks);
    Py_CLEAR(snapshot->end_hooks);
    Py_CLEAR(snapshot->error_hooks);
    Py_CLEAR(snapshot->inject_hooks);
    Py_CLEAR(snapshot->request_capture);
    Py_CLEAR(snapshot->response_capture);
    Py_CLEAR(snapshot->generate_id);
}

/* The fields of `hooks`: read once per Hooks object (attach and detach make a new one).
 * Borrowed: valid until Python code runs, so callers take references of what they keep. */
Snapshot *
snapshot_of(CoreState *state, PyObject *hooks)
{
    if (state->snapshot.hooks == hooks) {
        return &state->snapshot;
    }
    Snapshot fresh = {.hooks = Py_NewRef(hooks)};
    fresh.start_hooks = PyObject_GetAttr(hooks, state->s_start_hooks);
    fresh.end_hooks = fresh.start_hooks ? PyObject_GetAttr(hooks, state->s_end_hooks) : NULL;
    fresh.error_hooks = fresh.end_hooks ? PyObject_GetAttr(hooks, state->s_error_hooks) : NULL;
    fresh.inject_hooks = fresh.error_hooks ? PyObject_GetAttr(hooks, state->s_inject_hooks) : NULL;
    fresh.request_capture =
        fresh.inject_hooks ? PyObject_GetAttr(hooks, state->s_request_capture) : NULL;
    fresh.response_capture =
        fresh.request_capture ? PyObject_GetAttr(hooks, state->s_response_capture) : NULL;
    fresh.generate_id = fresh.response_capture ? PyObject_GetAttr(hooks, state->s_generate_id) : NULL;
    if (fresh.generate_id == NULL || !PyTuple_Check(fresh.start_hooks) ||
        !PyTuple_Check(fresh.end_hooks) || !PyTuple_Check(fresh.error_hooks) ||
        !PyTuple_Check(fresh.inject_hooks)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "Hooks: the *_hooks fields must be tuples");
        }
        snapshot_clear(&fresh);
        return NULL;
    }
    Snapshot old = state->snapshot;
    state->snapshot = fresh;
    snapshot_clear(&old); /* may run Python code (a finalizer): after the swap */
    return &state->snapshot;
}

PyObject *
optional_attr(PyObject *obj, PyObject *name)
{
    PyObject *value;
    if (PyObject_GetOptionalAttr(obj, name, &value) < 0) {
        return NULL;
    }
    return value;
}

PyObject *
text_join(PyObject *const *parts, Py_ssize_t count)
{
    Py_ssize_t length = 0;
    Py_UCS4 widest = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        length += PyUnicode_GET_LENGTH(parts[i]);
        Py_UCS4 max = PyUnicode_MAX_CHAR_VALUE(parts[i]);
        widest = max > widest ? max : widest;
    }
    PyObject *text = PyUnicode_New(length, widest);
    if (text == NULL) {
        return NULL;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t part = PyUnicode_GET_LENGTH(parts[i]);
        if (PyUnicode_CopyCharacters(text, at, parts[i], 0, part) < 0) {
            Py_DECREF(text);
            return NULL;
        }
        at += part;
    }
    return text;
}

/* ---------------------------------------------------------------- configuration */

static int
size_option(PyObject *options, const char *name, Py_ssize_t *value)
{
    PyObject *given = PyDict_GetItemString(options, name); /* borrowed */
    if (given == NULL) {
        PyErr_Format(PyExc_KeyError, "configure(): %s missing", name);
        return -1;
    }
    *value = PyLong_AsSsize_t(given);
    return *value == -1 && PyErr_Occurred() ? -1 : 0;
}

static int
object_option(PyObject *options, const char *name, PyObject **slot)
{
    PyObject *given = PyDict_GetItemString(options, name); /* borrowed */
    if (given == NULL) {
        PyErr_Format(PyExc_KeyError, "configure(): %s missing", name);
        return -1;
    }
    Py_XSETREF(*slot, Py_NewRef(given));
    return 0;
}

PyDoc_STRVAR(configure_doc,
"configure(**options)\n\n"
"What the core takes from the Python twin, once, at import (hooktel._core.bind).");

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *options)
{
    CoreState *state = PyModule_GetState(module);
    if (PyTuple_GET_SIZE(args) != 0 || options == NULL) {
        PyErr_SetString(PyExc_TypeError, "configure() takes keyword arguments only");
        return NULL;
    }
    if (object_option(options, "hooks_by_kind", &state->hooks_by_kind) < 0 ||
        size_option(options, "http_kind", &state->http_kind) < 0 ||
        object_option(options, "parent_trace_id", &state->parent_trace_id) < 0 ||
        object_option(options, "parent_span_id", &state->parent_span_id) < 0 ||
        object_option(options, "parent_trace_flags", &state->parent_trace_flags) < 0 ||
        object_option(options, "parent_trace_state", &state->parent_trace_state) < 0 ||
        object_option(options, "report_hook_error", &state->report_hook_error) < 0 ||
        object_option(options, "format_exception", &state->format_exception) < 0 ||
        object_option(options, "known_methods", &state->known_methods) < 0 ||
        object_option(options, "header_pairs", &state->header_pairs) < 0 ||
        object_option(options, "merge_injected", &state->merge_injected) < 0 ||
        object_option(options, "framing_headers", &state->framing_headers) < 0 ||
        size_option(options, "max_injected_headers", &state->max_injected_headers) < 0 ||
        object_option(options, "cgi_scanned_keys", &state->cgi_scanned_keys) < 0 ||
        object_option(options, "redacted", &state->redacted) < 0 ||
        size_option(options, "max_header_value", &state->max_header_value) < 0 ||
        size_option(options, "max_url", &state->max_url) < 0 ||
        size_option(options, "max_message", &state->max_message) < 0 ||
        size_option(options, "max_stacktrace", &state->max_stacktrace) < 0 ||
        size_option(options, "max_host", &state->max_host) < 0 ||
        size_option(options, "max_tracestate", &state->max_tracestate) < 0) {
        return NULL;
    }
    if (!PyList_Check(state->hooks_by_kind) || state->http_kind < 0 ||
        PyList_GET_SIZE(state->hooks_by_kind) <= state->http_kind ||
        !PyUnicode_Check(state->parent_trace_id) || !PyUnicode_Check(state->parent_span_id) ||
        !PyUnicode_Check(state->parent_trace_flags) || !PyUnicode_Check(state->parent_trace_state) ||
        !PyAnySet_Check(state->known_methods) || !PyAnySet_Check(state->framing_headers) ||
        !PyTuple_Check(state->cgi_scanned_keys)) {
        PyErr_SetString(PyExc_TypeError, "configure(): unexpected types");
        Py_CLEAR(state->hooks_by_kind);
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(mark_coroutine_call_doc,
"mark_coroutine_call(cls, function)\n\n"
"Put the `async def` `function` in `cls.__dict__['__call__']` without touching the C\n"
"call slot: servers (uvicorn, hypercorn) tell an ASGI 3 app by `__call__` being a\n"
"coroutine function, while calls keep going to the compiled implementation.");

static PyObject *
mark_coroutine_call(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(args[0]) || !PyFunction_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "mark_coroutine_call(cls, function)");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    if (PyDict_SetItemString(type->tp_dict, "__call__", args[1]) < 0) {
        return NULL;
    }
    PyType_Modified(type);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(serve_websockets_doc,
"serve_websockets(run_websocket)\n\n"
"Give the ASGI middleware the Python twin's connection runner for `websocket`\n"
"scopes: run_websocket(hooks, app, scope, receive, send) -> coroutine. Until it is\n"
"given, websocket scopes go straight to the app.");

static PyObject *
serve_websockets(PyObject *module, PyObject *runner)
{
    if (!PyCallable_Check(runner)) {
        PyErr_SetString(PyExc_TypeError, "serve_websockets() takes a callable");
        return NULL;
    }
    CoreState *state = PyModule_GetState(module);
    Py_XSETREF(state->run_websocket, Py_NewRef(runner));
    Py_RETURN_NONE;
}

static PyMethodDef core_methods[] = {
    {"serve_websockets", (PyCFunction)serve_websockets, METH_O, serve_websockets_doc},
    {"parse_traceparent", (PyCFunction)core_parse_traceparent, METH_O,
     "The (trace_id, span_id, trace_flags) of a traceparent value, or None."},
    {"begin_http", (PyCFunction)(void (*)(void))core_begin_http, METH_FASTCALL | METH_KEYWORDS,
     "Start an operation: build the start attributes and notify the instruments."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     configure_doc},
    {"mark_coroutine_call", (PyCFunction)(void (*)(void))mark_coroutine_call, METH_FASTCALL,
     mark_coroutine_call_doc},
    {NULL, NULL, 0, NULL},
};

/* ---------------------------------------------------------------- module state */

static int
add_type(PyObject *module, PyType_Spec *spec, PyTypeObject **slot, const char *name)
{
    *slot = (PyTypeObject *)PyType_FromModuleAndSpec(module, spec, NULL);
    if (*slot == NULL) {
        return -1;
    }
    return name == NULL ? 0 : PyModule_AddObjectRef(module, name, (PyObject *)*slot);
}

static int
core_exec(PyObject *module)
{
    CoreState *state = PyModule_GetState(module);
#define MAKE_STRING(name, text)                                                \
    if ((state->name = PyUnicode_InternFromString(text)) == NULL) {            \
        return -1;                                                             \
    }
    CORE_STRINGS(MAKE_STRING)
#undef MAKE_STRING
    if (add_type(module, &operation_spec, &state->operation_type, "HttpOperation") < 0 ||
        add_type(module, &request_body_spec, &state->request_body_type, "RequestBody") < 0 ||
        add_type(module, &asgi_middleware_spec, &state->asgi_middleware_type, "AsgiMiddleware") < 0 ||
        add_type(module, &asgi_request_spec, &state->asgi_request_type, NULL) < 0 ||
        add_type(module, &step_spec, &state->step_type, NULL) < 0 ||
        add_type(module, &wsgi_middleware_spec, &state->wsgi_middleware_type, "WsgiMiddleware") < 0 ||
        add_type(module, &wsgi_request_spec, &state->wsgi_request_type, NULL) < 0 ||
        add_type(module, &wsgi_response_spec, &state->wsgi_response_type, NULL) < 0) {
        return -1;
    }
    return 0;
}

#define STATE_OBJECTS(X)                                                       \
    X(operation_type) X(request_body_type) X(asgi_middleware_type)             \
    X(asgi_request_type) X(step_type) X(wsgi_middleware_type)                  \
    X(wsgi_request_type) X(wsgi_response_type) X(hooks_by_kind)                \
    X(report_hook_error) X(format_exception) X(known_methods) X(header_pairs)  \
    X(merge_injected) X(framing_headers) X(cgi_scanned_keys) X(redacted)      \
    X(parent_trace_id) X(parent_span_id) X(parent_trace_flags)                 \
    X(parent_trace_state) X(run_websocket) X(snapshot.hooks)                   \
    X(snapshot.start_hooks) X(snapshot.end_hooks) X(snapshot.error_hooks)      \
    X(snapshot.inject_hooks) X(snapshot.request_capture)                       \
    X(snapshot.response_capture) X(snapshot.generate_id)

static int
core_traverse(PyObject *module, visitproc visit, void *arg)
{
    CoreState *state = PyModule_GetState(module);
#define VISIT(name) Py_VISIT(state->name);
    STATE_OBJECTS(VISIT)
#undef VISIT
    return 0;
}

static int
core_clear(PyObject *module)
{
    CoreState *state = PyModule_GetState(module);
#define CLEAR(name) Py_CLEAR(state->name);
    STATE_OBJECTS(CLEAR)
#undef CLEAR
#define CLEAR_STRING(name, text) Py_CLEAR(state->name);
    CORE_STRINGS(CLEAR_STRING)
#undef CLEAR_STRING
    return 0;
}

static void
core_free(void *module)
{
    core_clear((PyObject *)module);
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
    {0, NULL},
};

struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hooktel._core.compiled",
    .m_doc = "The native hook core: compiled twins of hooktel's Python hook layer.",
    .m_size = sizeof(CoreState),
    .m_methods = core_methods,
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

PyMODINIT_FUNC
PyInit_compiled(void)
{
    return PyModuleDef_Init(&core_module);
}
