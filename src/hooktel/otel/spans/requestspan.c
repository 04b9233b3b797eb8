/* hooktel.otel.spans.requestspan: the compiled request span and the span bridge's helpers.
 *
 * The twin of requestspan_py.py, which is the specification (tests/native/ holds
 * this module to it; HOOKTEL_PURE_PYTHON=1 runs the twin). Apart from the core:
 * the core is stdlib-only and knows nothing of spans. What this module shares with
 * its twin (the trace flags this side sends) it is given once, by configure().
 *
 * `SpanCore` is the C part of the twin of `RequestSpan`: it does in C what every
 * request does: start (the span processors' `on_start`), `get_span_context`,
 * `is_recording`, hooktel's own attributes (`set_trusted`, into a plain dict),
 * `update_name` and `end` (the hand-over to `on_end`). What only a handler asks for
 * (its own attributes, events, links, status, exceptions) is the twin's Python,
 * shared by both (`requestspan_py.HandlerCalls`): it goes through the SDK's
 * validating containers, which are Python anyway.
 *
 * The fields `ReadableSpan`'s properties read are members of a subtype made by
 * `span_type(name, fields)`, named by the seam to OpenTelemetry's internals
 * (hooktel/otel/_sdk.py): no private name of OpenTelemetry is written here.
 * `Spans` holds what every span of one tracer shares (its processor, the Python
 * class its spans are, the callables of the rare paths) and makes them.
 */
#include "capi.h"
#include <structmember.h>
#include <time.h>

typedef struct {
    long known_trace_flags;   /* requestspan_py.KNOWN_TRACE_FLAGS; -1 until configure() */
    PyTypeObject *core_type;  /* SpanCore */
    PyTypeObject *spans_type; /* Spans */
} SpansState;

static const char HEX[] = "0123456789abcdef";

/* `number` as `nbytes` (8 or 16) big-endian hex digits at `out`. */
static int
write_hex(char *out, PyObject *number, int nbytes)
{
    unsigned char raw[16];
    if (unsigned_bytes(number, raw, nbytes) < 0) {
        return -1;
    }
    for (int i = 0; i < nbytes; i++) {
        out[2 * i] = HEX[raw[i] >> 4];
        out[2 * i + 1] = HEX[raw[i] & 0xf];
    }
    return 0;
}

PyDoc_STRVAR(format_traceparent_doc,
"format_traceparent(trace_id, span_id, trace_flags, /) -> str\n\n"
"The version 00 traceparent this side sends, flags outside KNOWN_TRACE_FLAGS zero.");

static PyObject *
format_traceparent(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    SpansState *state = PyModule_GetState(module);
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "format_traceparent() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    if (state->known_trace_flags < 0) {
        PyErr_SetString(PyExc_RuntimeError, "format_traceparent(): configure() first");
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        if (!PyLong_Check(args[i])) {
            PyErr_SetString(PyExc_TypeError, "format_traceparent() takes int arguments");
            return NULL;
        }
    }
    long flags = PyLong_AsLong(args[2]);
    if (flags == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (flags < 0 || flags > 255) {
        PyErr_SetString(PyExc_OverflowError, "trace_flags must be 0-255");
        return NULL;
    }
    flags &= state->known_trace_flags;
    char out[55] = "00-";
    if (write_hex(out + 3, args[0], 16) < 0 || write_hex(out + 36, args[1], 8) < 0) {
        return NULL;
    }
    out[35] = out[52] = '-';
    out[53] = HEX[flags >> 4];
    out[54] = HEX[flags & 0xf];
    return PyUnicode_FromStringAndSize(out, 55);
}

PyDoc_STRVAR(without_keys_doc,
"without_keys(mapping, skip, /) -> dict\n\n"
"A new dict of the items of `mapping` (a dict) whose keys are not in `skip` (a set):\n"
"the twin of `{k: v for k, v in mapping.items() if k not in skip}`.");

static PyObject *
without_keys(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_Check(args[0]) || !PyAnySet_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "without_keys(mapping: dict, skip: set)");
        return NULL;
    }
    PyObject *result = PyDict_New();
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (result != NULL && PyDict_Next(args[0], &position, &key, &value)) {
        int skipped = PySet_Contains(args[1], key);
        if (skipped < 0 || (!skipped && PyDict_SetItem(result, key, value) < 0)) {
            Py_CLEAR(result);
        }
    }
    return result;
}

PyDoc_STRVAR(untracked_doc,
"untracked(obj, /) -> obj\n\n"
"`obj`, taken out of the garbage collector's care. For objects that cannot be part of a\n"
"reference cycle (a finished span and its span context: they refer to values, never back),\n"
"which wait in an export queue long enough to survive young collections and be traversed\n"
"again by every older one. Reference counting still frees them. The Python twin can only\n"
"return `obj`.");

static PyObject *
untracked(PyObject *module, PyObject *obj)
{
    if (PyObject_IS_GC(obj) && PyObject_GC_IsTracked(obj)) {
        PyObject_GC_UnTrack(obj);
    }
    return Py_NewRef(obj);
}

PyDoc_STRVAR(configure_doc,
"configure(*, known_trace_flags)\n\n"
"What this module takes from its Python twin, once (hooktel._core.twin).");

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *options)
{
    static char *keywords[] = {"known_trace_flags", NULL};
    long flags;
    if (!PyArg_ParseTupleAndKeywords(args, options, "$l:configure", keywords, &flags)) {
        return NULL;
    }
    if (flags < 0 || flags > 255) {
        PyErr_SetString(PyExc_ValueError, "configure(): known_trace_flags must be 0-255");
        return NULL;
    }
    ((SpansState *)PyModule_GetState(module))->known_trace_flags = flags;
    Py_RETURN_NONE;
}

/* What every span of one tracer shares. */
typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;       /* the Python class of the spans: a subtype of SpanCore */
    PyObject *processor;     /* the provider's span processor */
    PyObject *on_ending;     /* its `_on_ending`, or NULL */
    PyObject *readable;      /* ReadableSpan, built for `on_end` unless `takes(processor)` */
    PyObject *takes;         /* handover.takes_request_spans */
    PyObject *freeze;        /* _sdk.freeze: the SDK's attributes made immutable at the end */
    PyObject *warn;          /* the twin's logger.warning */
    PyObject *lock_type;     /* threading.Lock */
    PyObject *set_trusted;   /* the twin's set_trusted: when the attributes are the SDK's */
    PyObject *bounded;       /* the twin's _bounded: the attributes as the SDK keeps them */
    PyObject *unset;         /* Status(UNSET), every span's status until it changes */
    PyObject *kind, *resource, *info, *scope;  /* ReadableSpan's arguments, the tracer's */
    PyObject *kw_parent_context;  /* ("parent_context",) */
    PyObject *s_on_start, *s_on_end, *s_acquire, *s_release;
    Py_ssize_t plain_max;    /* attributes a span holds in a plain dict (`_plain_max`) */
    vectorcallfunc vectorcall;
} Spans;

/* One request's span. */
typedef struct {
    PyObject_HEAD
    Spans *spans;
    PyObject *name, *context, *parent, *attributes, *events, *links, *status;
    PyObject *start_time;
    PyObject *end_time;    /* NULL (None to Python) while the span records */
    PyObject *record_end;  /* the SDK's end-of-span metrics, or NULL */
    PyObject *lock;        /* made when a handler's call first takes it */
} Span;

/* The members `span_type` names: the order of its `fields` argument, SPAN_FIELDS. */
static const Py_ssize_t field_offsets[] = {
    offsetof(Span, name),   offsetof(Span, context),    offsetof(Span, parent),
    offsetof(Span, attributes), offsetof(Span, events), offsetof(Span, links),
    offsetof(Span, status), offsetof(Span, start_time), offsetof(Span, end_time),
};
#define N_FIELDS ((Py_ssize_t)(sizeof(field_offsets) / sizeof(field_offsets[0])))

/* ---------------------------------------------------------------- the span */

static int
span_traverse(Span *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->spans);
    Py_VISIT(self->name);
    Py_VISIT(self->context);
    Py_VISIT(self->parent);
    Py_VISIT(self->attributes);
    Py_VISIT(self->events);
    Py_VISIT(self->links);
    Py_VISIT(self->status);
    Py_VISIT(self->start_time);
    Py_VISIT(self->end_time);
    Py_VISIT(self->record_end);
    Py_VISIT(self->lock);
    return 0;
}

static int
span_clear(Span *self)
{
    Py_CLEAR(self->spans);
    Py_CLEAR(self->name);
    Py_CLEAR(self->context);
    Py_CLEAR(self->parent);
    Py_CLEAR(self->attributes);
    Py_CLEAR(self->events);
    Py_CLEAR(self->links);
    Py_CLEAR(self->status);
    Py_CLEAR(self->start_time);
    Py_CLEAR(self->end_time);
    Py_CLEAR(self->record_end);
    Py_CLEAR(self->lock);
    return 0;
}

static void
span_dealloc(Span *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    span_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* The span's Spans, or NULL with an error once the collector cleared the span. */
static Spans *
spans_of(Span *self)
{
    if (self->spans == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "request span used after it was cleared");
    }
    return self->spans;
}

/* Twin: `logger.warning(message)`. */
static int
warn(Spans *spans, const char *message)
{
    PyObject *result = PyObject_CallFunction(spans->warn, "s", message);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* Twin: `self._handler_lock`, made here the first time it is asked for (a handler's call). */
static PyObject *
span_get_lock(Span *self, void *closure)
{
    if (self->lock == NULL) {
        Spans *spans = spans_of(self);
        if (spans == NULL) {
            return NULL;
        }
        PyObject *lock = PyObject_CallNoArgs(spans->lock_type);
        if (lock == NULL) {
            return NULL;
        }
        if (self->lock == NULL) {  /* made meanwhile by another thread: that one is kept */
            self->lock = lock;
        }
        else {
            Py_DECREF(lock);
        }
    }
    return Py_NewRef(self->lock);
}

/* The lock's `acquire`/`release` when a handler made it; nothing to do otherwise (the
 * GIL keeps the C paths whole: they call no Python code while they check and set). */
static int
lock_call(Span *self, PyObject *lock, PyObject *method)
{
    if (lock == NULL) {
        return 0;
    }
    PyObject *result = PyObject_CallMethodNoArgs(lock, method);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

PyDoc_STRVAR(span_start_doc,
"start(start_time, parent_context)\n\n"
"Twin: RequestSpan.start: the start time, then the processors' on_start.");

static PyObject *
span_start(Span *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "start(start_time, parent_context)");
        return NULL;
    }
    Spans *spans = spans_of(self);
    if (spans == NULL) {
        return NULL;
    }
    Py_XSETREF(self->start_time, Py_NewRef(args[0]));
    PyObject *call[3] = {spans->processor, (PyObject *)self, args[1]};
    PyObject *result = PyObject_VectorcallMethod(spans->s_on_start, call, 2,
                                                 spans->kw_parent_context);
    Py_XDECREF(result);
    return result == NULL ? NULL : Py_NewRef(Py_None);
}

static PyObject *
span_get_span_context(Span *self, PyObject *unused)
{
    return Py_NewRef(self->context != NULL ? self->context : Py_None);
}

static PyObject *
span_is_recording(Span *self, PyObject *unused)
{
    return PyBool_FromLong(self->end_time == NULL || self->end_time == Py_None);
}

#define ENDED(self) ((self)->end_time != NULL && (self)->end_time != Py_None)

PyDoc_STRVAR(span_set_trusted_doc,
"set_trusted(attributes)\n\n"
"Add attributes hooktel built, without validating them again (twin: RequestSpan.set_trusted).");

static PyObject *
span_set_trusted(Span *self, PyObject *attributes)
{
    Spans *spans = spans_of(self);
    if (spans == NULL) {
        return NULL;
    }
    if (ENDED(self)) {
        Py_RETURN_NONE;
    }
    PyObject *current = self->attributes;
    if (current != NULL && PyDict_CheckExact(current) && PyDict_CheckExact(attributes)
        && PyDict_GET_SIZE(current) + PyDict_GET_SIZE(attributes) <= spans->plain_max) {
        /* str keys of hooktel's: the update runs no Python code */
        if (PyDict_Update(current, attributes) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    return PyObject_CallFunctionObjArgs(spans->set_trusted, (PyObject *)self, attributes, NULL);
}

static PyObject *
span_update_name(Span *self, PyObject *name)
{
    Spans *spans = spans_of(self);
    if (spans == NULL) {
        return NULL;
    }
    if (ENDED(self)) {
        return warn(spans, "Calling update_name on an ended span.") < 0 ? NULL
                                                                         : Py_NewRef(Py_None);
    }
    Py_XSETREF(self->name, Py_NewRef(name));
    Py_RETURN_NONE;
}

/* What `on_end` gets: the span itself when every processor takes request spans, else a
 * genuine ReadableSpan of its fields (positional: ReadableSpan's parameter order). */
static PyObject *
ended_span(Span *self, Spans *spans)
{
    PyObject *takes = PyObject_CallOneArg(spans->takes, spans->processor);
    if (takes == NULL) {
        return NULL;
    }
    int yes = PyObject_IsTrue(takes);
    Py_DECREF(takes);
    if (yes < 0) {
        return NULL;
    }
    if (yes) {
        return Py_NewRef(self);
    }
#define OR_NONE(field) ((field) != NULL ? (field) : Py_None)
    PyObject *args[13] = {
        OR_NONE(self->name),    OR_NONE(self->context),    OR_NONE(self->parent),
        spans->resource,        OR_NONE(self->attributes), OR_NONE(self->events),
        OR_NONE(self->links),   spans->kind,               spans->info,
        OR_NONE(self->status),  OR_NONE(self->start_time), OR_NONE(self->end_time),
        spans->scope,
    };
#undef OR_NONE
    return PyObject_Vectorcall(spans->readable, args, 13, NULL);
}

static PyObject *
now_ns(void)
{
    struct timespec ts;
    if (timespec_get(&ts, TIME_UTC) != TIME_UTC) {
        PyErr_SetString(PyExc_OSError, "timespec_get() failed");
        return NULL;
    }
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}

/* Twin: the part of RequestSpan.end under its lock. 1 ended now, 0 already ended, -1 error. */
static int
mark_ended(Span *self, Spans *spans, PyObject *end_time)
{
    PyObject *lock = self->lock == NULL ? NULL : Py_NewRef(self->lock);
    if (lock_call(self, lock, spans->s_acquire) < 0) {
        Py_XDECREF(lock);
        return -1;
    }
    int ended = 0;
    if (!ENDED(self)) {
        PyObject *when = end_time != Py_None ? Py_NewRef(end_time) : now_ns();
        if (when == NULL) {
            ended = -1;
        }
        else {
            Py_XSETREF(self->end_time, when);
            ended = 1;
            if (self->attributes != NULL && !PyDict_CheckExact(self->attributes)) {
                PyObject *attributes = Py_NewRef(self->attributes);
                PyObject *done = PyObject_CallOneArg(spans->freeze, attributes);
                Py_DECREF(attributes);
                Py_XDECREF(done);
                ended = done == NULL ? -1 : 1;
            }
        }
    }
    /* The twin's `with self._handler_lock`: released also on failure, the error kept. */
    PyObject *type, *error, *traceback;
    PyErr_Fetch(&type, &error, &traceback);
    if (lock_call(self, lock, spans->s_release) < 0) {
        Py_XDECREF(type);
        Py_XDECREF(error);
        Py_XDECREF(traceback);
        ended = -1;
    }
    else {
        PyErr_Restore(type, error, traceback);
    }
    Py_XDECREF(lock);
    return ended;
}

static PyObject *
call_one(PyObject *callable, PyObject *arg)
{
    return arg == NULL ? PyObject_CallNoArgs(callable) : PyObject_CallOneArg(callable, arg);
}

PyDoc_STRVAR(span_end_doc,
"end(end_time=None)\n\n"
"Twin: RequestSpan.end: ended once, then the end metrics, _on_ending and on_end.");

static PyObject *
span_end(Span *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs + nkw > 1
        || (nkw == 1
            && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "end_time") != 0)) {
        PyErr_SetString(PyExc_TypeError, "end(end_time=None)");
        return NULL;
    }
    PyObject *end_time = nargs + nkw == 1 ? args[0] : Py_None;
    Spans *spans = spans_of(self);
    if (spans == NULL) {
        return NULL;
    }
    Py_INCREF(spans);  /* held across the calls below, whatever they do to the span */
    PyObject *result = NULL;
    int ended = mark_ended(self, spans, end_time);
    if (ended == 0) {
        if (warn(spans, "Calling end() on an ended span.") == 0) {
            result = Py_NewRef(Py_None);
        }
        goto done;
    }
    if (ended < 0) {
        goto done;
    }
    if (self->record_end != NULL) {
        PyObject *record_end = Py_NewRef(self->record_end);
        PyObject *recorded = call_one(record_end, NULL);
        Py_DECREF(record_end);
        if (recorded == NULL) {
            goto done;
        }
        Py_DECREF(recorded);
    }
    if (spans->on_ending != NULL) {
        PyObject *told = call_one(spans->on_ending, (PyObject *)self);
        if (told == NULL) {
            goto done;
        }
        Py_DECREF(told);
    }
    PyObject *span = ended_span(self, spans);
    if (span == NULL) {
        goto done;
    }
    /* Ended: nothing changes it any more, out of the collector's care (`untracked`). */
    Py_SETREF(span, untracked(NULL, span));
    result = PyObject_CallMethodOneArg(spans->processor, spans->s_on_end, span);
    Py_DECREF(span);
    if (result != NULL) {
        Py_SETREF(result, Py_NewRef(Py_None));
    }
done:
    Py_DECREF(spans);
    return result;
}

static PyMethodDef span_methods[] = {
    {"start", (PyCFunction)(void (*)(void))span_start, METH_FASTCALL, span_start_doc},
    {"get_span_context", (PyCFunction)span_get_span_context, METH_NOARGS, NULL},
    {"is_recording", (PyCFunction)span_is_recording, METH_NOARGS, NULL},
    {"set_trusted", (PyCFunction)span_set_trusted, METH_O, span_set_trusted_doc},
    {"update_name", (PyCFunction)span_update_name, METH_O, NULL},
    {"end", (PyCFunction)(void (*)(void))span_end, METH_FASTCALL | METH_KEYWORDS, span_end_doc},
    {NULL},
};

static PyGetSetDef span_getset[] = {
    {"_handler_lock", (getter)span_get_lock, NULL, "the lock a handler's calls take", NULL},
    {NULL},
};

PyDoc_STRVAR(span_core_doc,
"The C part of a compiled request span; made by Spans, named by span_type().");

static PyType_Slot span_core_slots[] = {
    {Py_tp_doc, (void *)span_core_doc},
    {Py_tp_dealloc, span_dealloc},
    {Py_tp_traverse, span_traverse},
    {Py_tp_clear, span_clear},
    {Py_tp_methods, span_methods},
    {Py_tp_getset, span_getset},
    {0, NULL},
};

static PyType_Spec span_core_spec = {
    .name = "hooktel.otel.spans.requestspan.SpanCore",
    .basicsize = sizeof(Span),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = span_core_slots,
};

/* ---------------------------------------------------------------- the tracer's spans */

static int
spans_traverse(Spans *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->cls);
    Py_VISIT(self->processor);
    Py_VISIT(self->on_ending);
    Py_VISIT(self->readable);
    Py_VISIT(self->takes);
    Py_VISIT(self->freeze);
    Py_VISIT(self->warn);
    Py_VISIT(self->lock_type);
    Py_VISIT(self->set_trusted);
    Py_VISIT(self->bounded);
    Py_VISIT(self->unset);
    Py_VISIT(self->kind);
    Py_VISIT(self->resource);
    Py_VISIT(self->info);
    Py_VISIT(self->scope);
    return 0;
}

static int
spans_clear(Spans *self)
{
    Py_CLEAR(self->cls);
    Py_CLEAR(self->processor);
    Py_CLEAR(self->on_ending);
    Py_CLEAR(self->readable);
    Py_CLEAR(self->takes);
    Py_CLEAR(self->freeze);
    Py_CLEAR(self->warn);
    Py_CLEAR(self->lock_type);
    Py_CLEAR(self->set_trusted);
    Py_CLEAR(self->bounded);
    Py_CLEAR(self->unset);
    Py_CLEAR(self->kind);
    Py_CLEAR(self->resource);
    Py_CLEAR(self->info);
    Py_CLEAR(self->scope);
    Py_CLEAR(self->kw_parent_context);
    Py_CLEAR(self->s_on_start);
    Py_CLEAR(self->s_on_end);
    Py_CLEAR(self->s_acquire);
    Py_CLEAR(self->s_release);
    return 0;
}

static void
spans_dealloc(Spans *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    spans_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* spans(name, context, parent, attributes, record_end_metrics): a span, not yet started.
 * Twin: RequestSpan.__init__. */
static PyObject *
spans_call(Spans *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 5 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "spans(name, context, parent, attributes, record_end_metrics)");
        return NULL;
    }
    PyObject *attributes = args[3];
    if (!PyDict_Check(attributes)) {
        PyErr_SetString(PyExc_TypeError, "attributes must be a dict");
        return NULL;
    }
    if (self->cls == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Spans used after it was cleared");
        return NULL;
    }
    Span *span = (Span *)self->cls->tp_alloc(self->cls, 0);
    if (span == NULL) {
        return NULL;
    }
    span->spans = (Spans *)Py_NewRef(self);
    span->name = Py_NewRef(args[0]);
    span->context = Py_NewRef(args[1]);
    span->parent = Py_NewRef(args[2]);
    span->attributes = Py_NewRef(attributes);
    span->events = PyTuple_New(0);
    span->links = PyTuple_New(0);
    span->status = Py_NewRef(self->unset);
    span->record_end = args[4] == Py_None ? NULL : Py_NewRef(args[4]);
    if (span->events == NULL || span->links == NULL) {
        Py_DECREF(span);
        return NULL;
    }
    if (PyDict_GET_SIZE(attributes) > self->plain_max) {
        PyObject *bounded = PyObject_CallOneArg(self->bounded, (PyObject *)span);
        if (bounded == NULL) {
            Py_DECREF(span);
            return NULL;
        }
        Py_SETREF(span->attributes, bounded);
    }
    return (PyObject *)span;
}

static PyObject *
spans_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"cls",       "processor", "on_ending", "readable",  "takes",
                            "freeze",    "warn",      "lock_type", "set_trusted", "bounded",
                            "unset",     "kind",      "resource",  "info",      "scope",
                            "plain_max", NULL};
    PyObject *cls, *processor, *on_ending, *readable, *takes, *freeze, *warn_, *lock_type,
        *set_trusted, *bounded, *unset, *kind, *resource, *info, *scope;
    Py_ssize_t plain_max;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$O!OOOOOOOOOOOOOOn:Spans", names,
                                     &PyType_Type, &cls, &processor, &on_ending, &readable,
                                     &takes, &freeze, &warn_, &lock_type, &set_trusted, &bounded,
                                     &unset, &kind, &resource, &info, &scope, &plain_max)) {
        return NULL;
    }
    SpansState *state = PyType_GetModuleState(type);
    if (state == NULL) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)cls, state->core_type)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a subtype of SpanCore");
        return NULL;
    }
    Spans *self = (Spans *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = (vectorcallfunc)spans_call;
    self->cls = (PyTypeObject *)Py_NewRef(cls);
    self->processor = Py_NewRef(processor);
    self->on_ending = on_ending == Py_None ? NULL : Py_NewRef(on_ending);
    self->readable = Py_NewRef(readable);
    self->takes = Py_NewRef(takes);
    self->freeze = Py_NewRef(freeze);
    self->warn = Py_NewRef(warn_);
    self->lock_type = Py_NewRef(lock_type);
    self->set_trusted = Py_NewRef(set_trusted);
    self->bounded = Py_NewRef(bounded);
    self->unset = Py_NewRef(unset);
    self->kind = Py_NewRef(kind);
    self->resource = Py_NewRef(resource);
    self->info = Py_NewRef(info);
    self->scope = Py_NewRef(scope);
    self->plain_max = plain_max;
    self->kw_parent_context = Py_BuildValue("(s)", "parent_context");
    self->s_on_start = PyUnicode_InternFromString("on_start");
    self->s_on_end = PyUnicode_InternFromString("on_end");
    self->s_acquire = PyUnicode_InternFromString("acquire");
    self->s_release = PyUnicode_InternFromString("release");
    if (self->kw_parent_context == NULL || self->s_on_start == NULL || self->s_on_end == NULL
        || self->s_acquire == NULL || self->s_release == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyMemberDef spans_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Spans, vectorcall), READONLY, NULL},
    {NULL},
};

PyDoc_STRVAR(spans_doc,
"Spans(*, cls, processor, on_ending, readable, takes, freeze, warn, lock_type,\n"
"      set_trusted, bounded, unset, kind, resource, info, scope, plain_max)\n\n"
"spans(name, context, parent, attributes, record_end_metrics): one tracer's request spans.");

static PyType_Slot spans_type_slots[] = {
    {Py_tp_doc, (void *)spans_doc},
    {Py_tp_new, spans_new},
    {Py_tp_dealloc, spans_dealloc},
    {Py_tp_traverse, spans_traverse},
    {Py_tp_clear, spans_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, spans_members},
    {0, NULL},
};

static PyType_Spec spans_spec = {
    .name = "hooktel.otel.spans.requestspan.Spans",
    .basicsize = sizeof(Spans),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = spans_type_slots,
};

/* ---------------------------------------------------------------- span_type */

PyDoc_STRVAR(span_type_doc,
"span_type(name, fields) -> type\n\n"
"A subtype of SpanCore whose span fields (name, context, parent, attributes, events,\n"
"links, status, start_time, end_time: in this order) are members named by `fields`\n"
"(kept as its `span_fields`: the members' names are those strings).");

static PyObject *
span_type(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyTuple_Check(args[1])
        || PyTuple_GET_SIZE(args[1]) != N_FIELDS) {
        PyErr_Format(PyExc_TypeError, "span_type(name: str, fields: tuple of %zd str)",
                     N_FIELDS);
        return NULL;
    }
    SpansState *state = PyModule_GetState(module);
    PyObject *fields = args[1];
    PyMemberDef members[N_FIELDS + 1];
    for (Py_ssize_t i = 0; i < N_FIELDS; i++) {
        PyObject *field = PyTuple_GET_ITEM(fields, i);
        const char *name = PyUnicode_Check(field) ? PyUnicode_AsUTF8(field) : NULL;
        if (name == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "span_type(): field names must be str");
            }
            return NULL;
        }
        members[i] = (PyMemberDef){(char *)name, T_OBJECT, field_offsets[i], 0, NULL};
    }
    members[N_FIELDS] = (PyMemberDef){NULL};
    const char *type_name = PyUnicode_AsUTF8(args[0]);
    if (type_name == NULL) {
        return NULL;
    }
    PyType_Slot slots[] = {
        {Py_tp_members, members},
        {Py_tp_dealloc, span_dealloc},
        {Py_tp_traverse, span_traverse},
        {Py_tp_clear, span_clear},
        {0, NULL},
    };
    PyType_Spec spec = {
        .name = type_name,
        .basicsize = 0,
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE
                 | Py_TPFLAGS_IMMUTABLETYPE,
        .slots = slots,
    };
    PyObject *type = PyType_FromModuleAndSpec(module, &spec, (PyObject *)state->core_type);
    /* In the immutable type's own dict: the names stay as long as the type. */
    if (type != NULL
        && PyDict_SetItemString(((PyTypeObject *)type)->tp_dict, "span_fields", fields) < 0) {
        Py_CLEAR(type);
    }
    if (type != NULL) {
        PyType_Modified((PyTypeObject *)type);
    }
    return type;
}

static PyMethodDef module_methods[] = {
    {"format_traceparent", (PyCFunction)(void (*)(void))format_traceparent, METH_FASTCALL,
     format_traceparent_doc},
    {"without_keys", (PyCFunction)(void (*)(void))without_keys, METH_FASTCALL,
     without_keys_doc},
    {"untracked", (PyCFunction)untracked, METH_O, untracked_doc},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     configure_doc},
    {"span_type", (PyCFunction)(void (*)(void))span_type, METH_FASTCALL, span_type_doc},
    {NULL, NULL, 0, NULL},
};


/* ---------------------------------------------------------------- module */

static int
module_exec(PyObject *module)
{
    SpansState *state = PyModule_GetState(module);
    state->known_trace_flags = -1;
    PyObject *roles = Py_BuildValue("(sssssssss)", "name", "context", "parent", "attributes",
                                    "events", "links", "status", "start_time", "end_time");
    if (roles == NULL || PyModule_AddObject(module, "SPAN_FIELDS", roles) < 0) {
        Py_XDECREF(roles);
        return -1;
    }
    state->core_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &span_core_spec, NULL);
    if (state->core_type == NULL || PyModule_AddType(module, state->core_type) < 0) {
        return -1;
    }
    state->spans_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &spans_spec, NULL);
    if (state->spans_type == NULL) {
        return -1;
    }
    return PyModule_AddType(module, state->spans_type);
}

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    SpansState *state = PyModule_GetState(module);
    Py_VISIT(state->core_type);
    Py_VISIT(state->spans_type);
    return 0;
}

static int
module_clear(PyObject *module)
{
    SpansState *state = PyModule_GetState(module);
    Py_CLEAR(state->core_type);
    Py_CLEAR(state->spans_type);
    return 0;
}

static void
module_free(void *module)
{
    module_clear((PyObject *)module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef requestspan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hooktel.otel.spans.requestspan",
    .m_doc = "The compiled request span and the span bridge's helpers: compiled twins of\n"
             "hooktel.otel.spans.requestspan_py.",
    .m_size = sizeof(SpansState),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit_requestspan(void)
{
    return PyModuleDef_Init(&requestspan_module);
}
