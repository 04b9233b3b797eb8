/* hooktel._core.compiled: what the native hook core's files share.
 *
 * The core is the compiled twin of hooktel's Python hook layer:
 *   compiled.c    module init, per-module state, configure(), small helpers
 *   request.c     start attributes of a request (twin of _http/request.py)
 *   operation.c   HttpOperation: the lifecycle and the hook calls (twin of
 *                 _http/operation.py: HttpOperation and RequestBody)
 *   middleware.c  what the two middleware types share
 *   asgi.c        the ASGI hook point (twin of asgi.py)
 *   wsgi.c        the WSGI hook point (twin of wsgi.py)
 * The Python modules are the specification; tests/native/ checks each twin
 * against them.
 */
#ifndef HOOKTEL_CORE_H
#define HOOKTEL_CORE_H

#include "capi.h"
#include "structmember.h" /* PyMemberDef: in Python.h only from 3.12 */

/* Interned strings, created once per module: attribute keys, ASGI/WSGI keys. */
#define CORE_STRINGS(X)                                                        \
    X(s_operation_id, "operation.id")                                          \
    X(s_operation_timestamp, "operation.timestamp")                            \
    X(s_operation_duration, "operation.duration")                              \
    X(s_method, "http.request.method")                                         \
    X(s_method_original, "http.request.method_original")                       \
    X(s_url_scheme, "url.scheme")                                              \
    X(s_url_path, "url.path")                                                  \
    X(s_url_query, "url.query")                                                \
    X(s_url_full, "url.full")                                                  \
    X(s_server_address, "server.address")                                      \
    X(s_server_port, "server.port")                                            \
    X(s_client_address, "client.address")                                      \
    X(s_client_port, "client.port")                                            \
    X(s_protocol_version, "network.protocol.version")                          \
    X(s_user_agent, "user_agent.original")                                     \
    X(s_request_body_size, "http.request.body.size")                           \
    X(s_status_code, "http.response.status_code")                              \
    X(s_response_body_size, "http.response.body.size")                         \
    X(s_route, "http.route")                                                   \
    X(s_error_type, "error.type")                                              \
    X(s_error_message, "error.message")                                        \
    X(s_stacktrace, "exception.stacktrace")                                    \
    X(s_other, "_OTHER")                                                       \
    X(s_empty, "")                                                             \
    X(s_slash, "/")                                                            \
    X(s_lower, "lower")                                                        \
    X(s_scheme_separator, "://")                                               \
    X(s_question_mark, "?")                                                    \
    X(s_colon, ":")                                                            \
    X(s_open_bracket, "[")                                                     \
    X(s_close_bracket_colon, "]:")                                             \
    X(s_star, "*")                                                             \
    X(s_http, "http")                                                          \
    X(s_https, "https")                                                        \
    X(s_ws, "ws")                                                              \
    X(s_wss, "wss")                                                            \
    X(s_websocket, "websocket")                                                \
    X(s_localhost, "localhost")                                                \
    X(s_client_disconnected, "ClientDisconnected")                             \
    X(s_parse_error, "ParseError")                                             \
    X(s_runtime_error, "RuntimeError")                                         \
    X(s_on_start, "on_operation_start")                                        \
    X(s_on_end, "on_operation_end")                                            \
    X(s_on_error, "on_operation_error")                                        \
    X(s_on_inject, "on_operation_inject")                                      \
    X(s_start_hooks, "start_hooks")                                            \
    X(s_end_hooks, "end_hooks")                                                \
    X(s_error_hooks, "error_hooks")                                            \
    X(s_inject_hooks, "inject_hooks")                                          \
    X(s_generate_id, "generate_id")                                            \
    X(s_request_capture, "request_capture")                                    \
    X(s_response_capture, "response_capture")                                  \
    X(s_keys, "keys")                                                          \
    X(s_redacted, "redacted")                                                  \
    X(s_cgi_keys, "cgi_keys")                                                  \
    X(s_route_key, "hooktel.route")                                            \
    X(s_exception_key, "hooktel.exception")                                    \
    X(s_operation_key, "hooktel.operation")                                    \
    X(s_type, "type")                                                          \
    X(s_scope_method, "method")                                                \
    X(s_scheme, "scheme")                                                      \
    X(s_path, "path")                                                          \
    X(s_raw_path, "raw_path")                                                  \
    X(s_query_string, "query_string")                                          \
    X(s_headers, "headers")                                                    \
    X(s_server, "server")                                                      \
    X(s_client, "client")                                                      \
    X(s_http_version, "http_version")                                          \
    X(s_status, "status")                                                      \
    X(s_body, "body")                                                          \
    X(s_more_body, "more_body")                                                \
    X(s_response_start, "http.response.start")                                 \
    X(s_response_body, "http.response.body")                                   \
    X(s_disconnect, "http.disconnect")                                         \
    X(s_disconnected, "disconnected")                                          \
    X(s_self, "__self__")                                                      \
    X(s_throw, "throw")                                                        \
    X(s_close, "close")                                                        \
    X(s_read, "read")                                                          \
    X(s_readline, "readline")                                                  \
    X(s_readlines, "readlines")                                                \
    X(s_request_method, "REQUEST_METHOD")                                      \
    X(s_url_scheme_key, "wsgi.url_scheme")                                     \
    X(s_wsgi_input, "wsgi.input")                                              \
    X(s_raw_uri, "RAW_URI")                                                    \
    X(s_request_uri, "REQUEST_URI")                                            \
    X(s_script_name, "SCRIPT_NAME")                                            \
    X(s_path_info, "PATH_INFO")                                                \
    X(s_query_string_key, "QUERY_STRING")                                      \
    X(s_server_name, "SERVER_NAME")                                            \
    X(s_server_port_key, "SERVER_PORT")                                        \
    X(s_remote_addr, "REMOTE_ADDR")                                            \
    X(s_remote_port, "REMOTE_PORT")                                            \
    X(s_server_protocol, "SERVER_PROTOCOL")                                    \
    X(s_transfer_encoding_key, "HTTP_TRANSFER_ENCODING")                       \
    X(s_content_length_key, "CONTENT_LENGTH")                                  \
    X(s_http_prefix, "HTTP_")                                                  \
    X(s_http_slash, "HTTP/")                                                   \
    X(s_get, "GET")                                                            \
    X(s_connect, "CONNECT")                                                    \
    X(s_head, "HEAD")                                                          \
    X(s_app_returned, "ASGI app returned without completing the response")     \
    X(s_client_gone_message, "client disconnected before the response was complete") \
    X(s_closed_early, "response closed before it was fully sent")

/* What the core reads from a `Hooks` snapshot (_registry.Hooks), read once per snapshot:
 * attach and detach make a new one, so the fields of the last one seen are kept here. */
typedef struct {
    PyObject *hooks; /* the Hooks object they were read from */
    PyObject *start_hooks, *end_hooks, *error_hooks, *inject_hooks; /* ((hook, name, version),) */
    PyObject *request_capture, *response_capture; /* HeaderCapture, or None */
    PyObject *generate_id;
} Snapshot;

typedef struct {
    PyTypeObject *operation_type;
    PyTypeObject *request_body_type;
    PyTypeObject *asgi_middleware_type;
    PyTypeObject *asgi_request_type;
    PyTypeObject *step_type;
    PyTypeObject *wsgi_middleware_type;
    PyTypeObject *wsgi_request_type;
    PyTypeObject *wsgi_response_type;
    /* Set by configure(), from the Python twin: the single sources of truth. */
    PyObject *hooks_by_kind;     /* _registry.hooks.HOOKS_BY_KIND (a list) */
    Py_ssize_t http_kind;        /* _registry.hooks.HTTP_KIND: the index into it */
    /* _http.traceparent.PARENT_*: the start attributes of the caller's trace context */
    PyObject *parent_trace_id, *parent_span_id, *parent_trace_flags, *parent_trace_state;
    PyObject *report_hook_error; /* _errors.report_hook_error */
    PyObject *format_exception;  /* traceback.format_exception */
    PyObject *known_methods;     /* _http.KNOWN_METHODS (a frozenset) */
    PyObject *header_pairs;      /* _http.header_pairs */
    PyObject *merge_injected;    /* _registry.merge_injected */
    PyObject *framing_headers;   /* _registry.FRAMING_HEADERS (a frozenset) */
    Py_ssize_t max_injected_headers;
    PyObject *cgi_scanned_keys;  /* wsgi._SCANNED_KEYS: ((cgi key, header name), ...) */
    Py_ssize_t max_header_value, max_url, max_message, max_stacktrace, max_host,
        max_tracestate;
    PyObject *redacted;          /* _headers.REDACTED */
    PyObject *run_websocket;     /* asgi.run_websocket, from serve_websockets(); or NULL */
    Snapshot snapshot;           /* of the last Hooks object seen */
#define DECLARE_STRING(name, text) PyObject *name;
    CORE_STRINGS(DECLARE_STRING)
#undef DECLARE_STRING
} CoreState;

/* The operation: one request's telemetry state (twin of _http.HttpOperation). */
typedef struct {
    PyObject_HEAD
    CoreState *state;
    PyObject *hooks;            /* the Hooks snapshot the request started with */
    PyObject *end_hooks, *error_hooks, *inject_hooks, *response_capture; /* read from it */
    PyObject *id;               /* int */
    int64_t began_ns;           /* CLOCK_MONOTONIC */
    char injected;
    char done;
    long status_code;
    Py_ssize_t body_size;
    PyObject *route;            /* str or NULL */
    PyObject *response_headers; /* dict or NULL */
    PyObject *read_error;       /* exception or NULL */
} Operation;

/* compiled.c */
CoreState *core_state_of_type(PyTypeObject *type);
int64_t monotonic_ns(void);
int64_t wall_clock_ns(void);
int core_configured(CoreState *state);
/* The hooks of kind HTTP (borrowed from HOOKS_BY_KIND), or NULL when none are attached:
 * the one check a request pays with nothing attached. */
static inline PyObject *
current_hooks(CoreState *state)
{
    PyObject *hooks = state->hooks_by_kind == NULL ? Py_None
                                                   : PyList_GET_ITEM(state->hooks_by_kind, state->http_kind);
    return hooks == Py_None ? NULL : hooks;
}

Snapshot *snapshot_of(CoreState *state, PyObject *hooks); /* valid until Python code runs */
PyObject *optional_attr(PyObject *obj, PyObject *name); /* new ref; NULL, no error: absent */
PyObject *text_join(PyObject *const *parts, Py_ssize_t count); /* "".join(parts) of str */

/* request.c */
typedef struct {
    PyObject *method, *scheme, *path, *query; /* str */
    PyObject *headers;     /* sequence of (name, value) pairs: str or latin-1 bytes */
    PyObject *server;      /* (address, port) or NULL */
    PyObject *client;      /* (address, port or None) or NULL */
    PyObject *protocol;    /* str */
} RequestFields;
Operation *begin_http(CoreState *state, PyObject *hooks, RequestFields *fields);
PyObject *core_begin_http(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames);
PyObject *core_parse_traceparent(PyObject *module, PyObject *value);
PyObject *collect_headers(CoreState *state, PyObject *capture, PyObject *headers);
PyObject *latin1_text(PyObject *value); /* new ref: str as is, bytes decoded */
int decimal_value(PyObject *text, long *value);

/* operation.c */
extern PyType_Spec operation_spec;
extern PyType_Spec request_body_spec;
Operation *operation_new(CoreState *state, PyObject *hooks, PyObject **start_hooks,
                         PyObject **request_capture);
PyObject *operation_inject(Operation *op);            /* new ref: dict */
int operation_respond(Operation *op, long status, PyObject *headers);
int operation_end(Operation *op);
int operation_fail(Operation *op, PyObject *error_type, PyObject *message, PyObject *exc);
int operation_fail_with(Operation *op, PyObject *exc, int client_gone);
int operation_complete(Operation *op, PyObject *handled);
int notify(CoreState *state, PyObject *hooks_tuple, PyObject *event, PyObject *op_id,
           PyObject *attrs);
PyObject *request_body_new(CoreState *state, PyObject *stream, Operation *op);
int omits_body(CoreState *state, PyObject *method, long status);

/* middleware.c: what the ASGI and WSGI middleware types share. */
typedef struct {
    PyObject_HEAD
    CoreState *state;
    PyObject *app;
    vectorcallfunc vectorcall;
} Middleware;
PyObject *middleware_new(PyTypeObject *type, PyObject *args, PyObject *kwargs,
                         vectorcallfunc call);
int middleware_traverse(PyObject *self, visitproc visit, void *arg);
int middleware_clear(PyObject *self);
void middleware_dealloc(PyObject *self);
extern PyMemberDef middleware_members[];

/* A middleware's call: the app's own, unless HTTP hooks are attached and this is a request
 * of its protocol (`nargs` positional arguments, `is_request`, not already inside an
 * operation: the scope or environ, args[0], has no operation key); then `run` with the
 * hooks held, so that a detach during the request does not free the snapshot. Inline: each
 * middleware's call is this with its own `is_request` and `run`, called directly. */
typedef int (*RequestCheck)(CoreState *state, PyObject *const *args); /* kind > 0, 0 or -1 */
typedef PyObject *(*RequestRun)(CoreState *state, int kind, PyObject *hooks, PyObject *app,
                                PyObject *const *args);
static inline PyObject *
middleware_call(Middleware *self, PyObject *const *args, size_t nargsf, PyObject *kwnames,
                Py_ssize_t nargs, RequestCheck is_request, RequestRun run)
{
    CoreState *state = self->state;
    PyObject *hooks = current_hooks(state);
    if (hooks == NULL || PyVectorcall_NARGS(nargsf) != nargs || kwnames != NULL) {
        return PyObject_Vectorcall(self->app, args, nargsf, kwnames);
    }
    int request = is_request(state, args);
    int nested = request > 0 ? PySequence_Contains(args[0], state->s_operation_key) : 0;
    if (request < 0 || nested < 0) {
        return NULL;
    }
    if (!request || nested) {
        return PyObject_Vectorcall(self->app, args, nargsf, NULL);
    }
    Py_INCREF(hooks);
    PyObject *result = run(state, request, hooks, self->app, args);
    Py_DECREF(hooks);
    return result;
}

/* asgi.c */
extern PyType_Spec asgi_middleware_spec;
extern PyType_Spec asgi_request_spec;
extern PyType_Spec step_spec;

/* wsgi.c */
extern PyType_Spec wsgi_middleware_spec;
extern PyType_Spec wsgi_request_spec;
extern PyType_Spec wsgi_response_spec;

#endif
