/* hooktel.otel.metrics.aggregator: the compiled twin of the metrics' per-request recorder.
 *
 * `Recorder(...)(value, key)` does what the closure `_fused_py(...)` of
 * hooktel/otel/metrics/histograms.py does, which is its specification (tested against
 * it in tests/native/test_aggregate_native.py; HOOKTEL_PURE_PYTHON=1 runs the
 * twin): look up the current span through the OpenTelemetry context variable
 * and keep its span context when sampled, then, holding the stream's lock, add
 * the value to the series of `key` (a list: sum, min, max, first time,
 * exemplars, bucket counts), admitting the key first when it is new, and keep
 * the measurement as its bucket's exemplar when sampled. Every operation on
 * values goes through the same protocol calls the Python twin makes
 * (PyNumber_Add, rich comparisons), so the results are the same objects'
 * results.
 */
#include "capi.h"
#include "structmember.h" /* PyMemberDef: in Python.h only from 3.12 */
#include <time.h>

/* The layout of a series list: hooktel/otel/metrics/streamtable.py names these. */
enum { SUM = 0, MIN = 1, MAX = 2, FIRST_NS = 3, EXEMPLARS = 4, COUNTS = 5 };

/* Interned names, created once per module. */
#define AGGREGATOR_STRINGS(X)                                                  \
    X(s_get, "get")                                                            \
    X(s_get_span_context, "get_span_context")                                  \
    X(s_trace_flags, "trace_flags")                                            \
    X(s_acquire, "acquire")                                                    \
    X(s_release, "release")                                                    \
    X(s_locked, "locked")

typedef struct {
    PyTypeObject *recorder_type;
    PyObject *one;
#define DECLARE_STRING(name, text) PyObject *name;
    AGGREGATOR_STRINGS(DECLARE_STRING)
#undef DECLARE_STRING
} aggregate_state;

typedef struct {
    PyObject_HEAD
    aggregate_state *state; /* of the module of its type, which it holds */
    PyObject *series;   /* dict: key -> series list */
    PyObject *bounds;   /* tuple of bucket bounds */
    PyObject *admit;    /* admit(key) -> series list, called with the lock held */
    PyObject *acquire;  /* the stream lock's bound acquire, release and locked */
    PyObject *release;
    PyObject *locked;
    PyObject *context_var;  /* OpenTelemetry's current-context ContextVar */
    PyObject *span_key;     /* the context key of the current span */
    PyObject *span_context_type;  /* opentelemetry.trace.SpanContext, a tuple subclass */
    Py_ssize_t flags_index;       /* where its trace flags are in the tuple */
    int min_max;
    int builtin_bounds;  /* every bound an exact float or int */
    vectorcallfunc vectorcall;
} Recorder;

static int
recorder_traverse(Recorder *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->series);
    Py_VISIT(self->bounds);
    Py_VISIT(self->admit);
    Py_VISIT(self->acquire);
    Py_VISIT(self->release);
    Py_VISIT(self->locked);
    Py_VISIT(self->context_var);
    Py_VISIT(self->span_key);
    Py_VISIT(self->span_context_type);
    return 0;
}

static int
recorder_clear(Recorder *self)
{
    Py_CLEAR(self->series);
    Py_CLEAR(self->bounds);
    Py_CLEAR(self->admit);
    Py_CLEAR(self->acquire);
    Py_CLEAR(self->release);
    Py_CLEAR(self->locked);
    Py_CLEAR(self->context_var);
    Py_CLEAR(self->span_key);
    Py_CLEAR(self->span_context_type);
    return 0;
}

static void
recorder_dealloc(Recorder *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    recorder_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* The sampled span context of the current span (a new reference), or NULL with no
 * error when there is none or it is not sampled; NULL with an error on failure.
 * Twin: `span = get_context().get(span_key)` ... `context.trace_flags & 1`. */
static PyObject *
sampled_span_context(Recorder *self)
{
    PyObject *context;
    if (PyContextVar_Get(self->context_var, NULL, &context) < 0) {
        return NULL;
    }
    if (context == NULL) {
        return NULL;  /* unset with no default: no span */
    }
    PyObject *span;
    if (PyDict_Check(context)) {
        span = PyDict_GetItemWithError(context, self->span_key);  /* borrowed */
        Py_XINCREF(span);
    }
    else {
        span = PyObject_CallMethodOneArg(context, self->state->s_get, self->span_key);
    }
    Py_DECREF(context);
    if (span == NULL || span == Py_None) {
        Py_XDECREF(span);
        return NULL;  /* an error, if any, is set */
    }
    PyObject *span_context = PyObject_CallMethodNoArgs(span, self->state->s_get_span_context);
    Py_DECREF(span);
    if (span_context == NULL) {
        return NULL;
    }
    PyObject *flags;
    if (Py_TYPE(span_context) == (PyTypeObject *)self->span_context_type
        && self->flags_index < PyTuple_GET_SIZE(span_context)) {
        /* The property `trace_flags` reads this item (the layout was checked). */
        flags = Py_NewRef(PyTuple_GET_ITEM(span_context, self->flags_index));
    }
    else {
        flags = PyObject_GetAttr(span_context, self->state->s_trace_flags);
        if (flags == NULL) {
            Py_DECREF(span_context);
            return NULL;
        }
    }
    PyObject *sampled = PyNumber_And(flags, self->state->one);
    Py_DECREF(flags);
    int is_sampled = sampled == NULL ? -1 : PyObject_IsTrue(sampled);
    Py_XDECREF(sampled);
    if (is_sampled <= 0) {
        Py_DECREF(span_context);
        return NULL;  /* not sampled (no error), or the error of the test */
    }
    return span_context;
}

/* `bisect.bisect_left(bounds, value)`; -1 with an error set on failure. */
static Py_ssize_t
bisect_left(PyObject *bounds, PyObject *value)
{
    Py_ssize_t lo = 0, hi = PyTuple_GET_SIZE(bounds);
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        int less = PyObject_RichCompareBool(PyTuple_GET_ITEM(bounds, mid), value, Py_LT);
        if (less < 0) {
            return -1;
        }
        if (less) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo;
}

/* series[index] = series[index] + addend */
static int
add_to(PyObject *series, Py_ssize_t index, PyObject *addend)
{
    PyObject *sum = PyNumber_Add(PyList_GET_ITEM(series, index), addend);
    if (sum == NULL) {
        return -1;
    }
    return PyList_SetItem(series, index, sum);  /* steals sum */
}

/* series[index] = value when `value op series[index]` */
static int
keep_if(PyObject *series, Py_ssize_t index, PyObject *value, int op)
{
    int better = PyObject_RichCompareBool(value, PyList_GET_ITEM(series, index), op);
    if (better <= 0) {
        return better;
    }
    Py_INCREF(value);
    return PyList_SetItem(series, index, value);  /* steals the new reference */
}

/* `series[...] += ...` of the twin, on a series list. */
static int
update(Recorder *self, PyObject *series, PyObject *value, PyObject *exemplar)
{
    Py_ssize_t buckets = PyTuple_GET_SIZE(self->bounds) + 1;
    if (!PyList_CheckExact(series) || PyList_GET_SIZE(series) != COUNTS + buckets
        || !PyList_CheckExact(PyList_GET_ITEM(series, EXEMPLARS))
        || PyList_GET_SIZE(PyList_GET_ITEM(series, EXEMPLARS)) != buckets) {
        PyErr_SetString(PyExc_TypeError, "a series must be a list laid out as streamtable.py says");
        return -1;
    }
    if (add_to(series, SUM, value) < 0) {
        return -1;
    }
    Py_ssize_t bucket = bisect_left(self->bounds, value);
    if (bucket < 0 || add_to(series, COUNTS + bucket, self->state->one) < 0) {
        return -1;
    }
    if (self->min_max
        && (keep_if(series, MIN, value, Py_LT) < 0 || keep_if(series, MAX, value, Py_GT) < 0)) {
        return -1;
    }
    if (exemplar != NULL) {
        return PyList_SetItem(PyList_GET_ITEM(series, EXEMPLARS), bucket, Py_NewRef(exemplar));
    }
    return 0;
}

/* The series of `key` (borrowed) when it exists and the update can go without taking
 * the lock, else NULL (no error set). That is when nobody holds the lock and the key
 * and the value are made of builtin types (and so are the bounds): finding the series
 * and updating it then calls no Python code and allocates nothing the garbage
 * collector tracks, so under the GIL nothing else runs meanwhile, neither another
 * request nor a collection handing the series over, and no Python code holding the
 * lock is in the middle of an update. A new key is admitted under the lock, as in
 * the twin. */
static PyObject *
series_without_lock(Recorder *self, PyObject *key, PyObject *value)
{
#ifdef Py_GIL_DISABLED
    return NULL;
#else
    if (!self->builtin_bounds || !PyTuple_CheckExact(key)
        || !(PyFloat_CheckExact(value) || PyLong_CheckExact(value))) {
        return NULL;
    }
    PyObject *locked = PyObject_CallNoArgs(self->locked);
    int held = locked == NULL ? -1 : PyObject_IsTrue(locked);
    Py_XDECREF(locked);
    if (held != 0) {
        PyErr_Clear();
        return NULL;  /* held (or unknown): take the lock */
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(key); i++) {
        PyObject *item = PyTuple_GET_ITEM(key, i);
        if (!(item == Py_None || PyUnicode_CheckExact(item) || PyLong_CheckExact(item))) {
            return NULL;
        }
    }
    PyObject *series = PyDict_GetItemWithError(self->series, key);
    if (series == NULL) {
        PyErr_Clear();
    }
    return series;
#endif
}

/* With the lock held: the series of `key`, admitted when new, updated. */
static int
update_locked(Recorder *self, PyObject *key, PyObject *value, PyObject *exemplar)
{
    PyObject *series = PyDict_GetItemWithError(self->series, key);  /* borrowed */
    if (series != NULL) {
        Py_INCREF(series);
    }
    else if (PyErr_Occurred()) {
        return -1;
    }
    else if ((series = PyObject_CallOneArg(self->admit, key)) == NULL) {
        return -1;
    }
    int result = update(self, series, value, exemplar);
    Py_DECREF(series);
    return result;
}

static PyObject *
recorder_call(Recorder *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_Format(PyExc_TypeError, "Recorder() takes 2 positional arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *value = args[0], *key = args[1];
    PyObject *exemplar = NULL;
    PyObject *span_context = sampled_span_context(self);
    if (span_context == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (span_context != NULL) {
        /* time.time_ns(): CLOCK_REALTIME, as CPython reads it on POSIX. */
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        PyObject *when = PyLong_FromLongLong((long long)now.tv_sec * 1000000000LL + now.tv_nsec);
        if (when != NULL) {
            exemplar = PyTuple_Pack(4, value, when, key, span_context);
            Py_DECREF(when);
        }
        Py_DECREF(span_context);
        if (exemplar == NULL) {
            return NULL;
        }
    }
    int failed;
    PyObject *series = series_without_lock(self, key, value);
    if (series != NULL) {
        failed = update(self, series, value, exemplar) < 0;
        Py_XDECREF(exemplar);
        return failed ? NULL : Py_NewRef(Py_None);
    }
    PyObject *acquired = PyObject_CallNoArgs(self->acquire);
    if (acquired == NULL) {
        Py_XDECREF(exemplar);
        return NULL;
    }
    Py_DECREF(acquired);
    failed = update_locked(self, key, value, exemplar) < 0;
    Py_XDECREF(exemplar);
    /* The twin's `finally: lock.release()`: released also on failure, error kept. */
    PyObject *type, *error, *traceback;
    PyErr_Fetch(&type, &error, &traceback);
    PyObject *released = PyObject_CallNoArgs(self->release);
    if (released == NULL) {
        Py_XDECREF(type);
        Py_XDECREF(error);
        Py_XDECREF(traceback);
        return NULL;
    }
    Py_DECREF(released);
    PyErr_Restore(type, error, traceback);
    if (failed) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
recorder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"series",      "bounds",   "admit",
                            "lock",        "context_var", "span_key",
                            "span_context_type", "flags_index", "min_max", NULL};
    PyObject *series, *bounds, *admit, *lock, *context_var, *span_key, *span_context_type;
    Py_ssize_t flags_index;
    int min_max;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!OOOUO!np:Recorder", names, &PyDict_Type,
                                     &series, &PyTuple_Type, &bounds, &admit, &lock,
                                     &context_var, &span_key, &PyType_Type, &span_context_type,
                                     &flags_index, &min_max)) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)span_context_type, &PyTuple_Type) || flags_index < 0) {
        PyErr_SetString(PyExc_TypeError, "span_context_type must be a tuple type");
        return NULL;
    }
    if (!PyCallable_Check(admit)) {
        PyErr_SetString(PyExc_TypeError, "admit must be callable");
        return NULL;
    }
    if (!PyContextVar_CheckExact(context_var)) {
        PyErr_SetString(PyExc_TypeError, "context_var must be a contextvars.ContextVar");
        return NULL;
    }
    Recorder *self = (Recorder *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->state = PyType_GetModuleState(type);
    self->vectorcall = (vectorcallfunc)recorder_call;
    self->min_max = min_max;
    self->series = Py_NewRef(series);
    self->bounds = Py_NewRef(bounds);
    self->admit = Py_NewRef(admit);
    self->context_var = Py_NewRef(context_var);
    self->span_key = Py_NewRef(span_key);
    self->span_context_type = Py_NewRef(span_context_type);
    self->flags_index = flags_index;
    self->builtin_bounds = 1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(bounds); i++) {
        PyObject *bound = PyTuple_GET_ITEM(bounds, i);
        self->builtin_bounds &= PyFloat_CheckExact(bound) || PyLong_CheckExact(bound);
    }
    self->acquire = PyObject_GetAttr(lock, self->state->s_acquire);
    self->release = self->acquire ? PyObject_GetAttr(lock, self->state->s_release) : NULL;
    self->locked = self->release ? PyObject_GetAttr(lock, self->state->s_locked) : NULL;
    if (self->locked == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyMemberDef recorder_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Recorder, vectorcall), READONLY, NULL},
    {NULL},
};

PyDoc_STRVAR(recorder_doc,
"Recorder(series, bounds, admit, lock, context_var, span_key, span_context_type,\n"
"         flags_index, min_max)\n\n"
"recorder(value, key): the compiled twin of hooktel.otel.metrics.histograms._fused_py.");

static PyType_Slot recorder_slots[] = {
    {Py_tp_doc, (void *)recorder_doc},
    {Py_tp_new, recorder_new},
    {Py_tp_dealloc, recorder_dealloc},
    {Py_tp_traverse, recorder_traverse},
    {Py_tp_clear, recorder_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, recorder_members},
    {0, NULL},
};

static PyType_Spec recorder_spec = {
    .name = "hooktel.otel.metrics.aggregator.Recorder",
    .basicsize = sizeof(Recorder),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = recorder_slots,
};

static int
aggregate_exec(PyObject *module)
{
    aggregate_state *state = PyModule_GetState(module);
#define MAKE_STRING(name, text)                                                \
    if ((state->name = PyUnicode_InternFromString(text)) == NULL) {            \
        return -1;                                                             \
    }
    AGGREGATOR_STRINGS(MAKE_STRING)
#undef MAKE_STRING
    if ((state->one = PyLong_FromLong(1)) == NULL) {
        return -1;
    }
    state->recorder_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &recorder_spec, NULL);
    if (state->recorder_type == NULL) {
        return -1;
    }
    return PyModule_AddType(module, state->recorder_type);
}

static int
aggregate_traverse(PyObject *module, visitproc visit, void *arg)
{
    aggregate_state *state = PyModule_GetState(module);
    Py_VISIT(state->recorder_type);
    return 0;
}

static int
aggregate_clear(PyObject *module)
{
    aggregate_state *state = PyModule_GetState(module);
    Py_CLEAR(state->recorder_type);
    Py_CLEAR(state->one);
#define CLEAR_STRING(name, text) Py_CLEAR(state->name);
    AGGREGATOR_STRINGS(CLEAR_STRING)
#undef CLEAR_STRING
    return 0;
}

static void
aggregate_free(void *module)
{
    aggregate_clear((PyObject *)module);
}

static PyModuleDef_Slot aggregate_slots[] = {
    {Py_mod_exec, aggregate_exec},
    {0, NULL},
};

static struct PyModuleDef aggregate_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hooktel.otel.metrics.aggregator",
    .m_doc = "The compiled twin of the metrics' per-request recorder (hooktel.otel.metrics.histograms).",
    .m_size = sizeof(aggregate_state),
    .m_slots = aggregate_slots,
    .m_traverse = aggregate_traverse,
    .m_clear = aggregate_clear,
    .m_free = aggregate_free,
};

PyMODINIT_FUNC
PyInit_aggregator(void)
{
    return PyModuleDef_Init(&aggregate_module);
}
