/* hooktel.otel.spans.requestspan: the span bridge's small helpers, compiled.
 *
 * The twin of the helpers in requestspan_py.py, which is the specification
 * (tests/native/ holds this module to it). Apart from the core: the core is
 * stdlib-only and knows nothing of spans. What this module shares with its twin
 * (the trace flags this side sends) it is given once, by configure().
 */
#include "capi.h"

typedef struct {
    long known_trace_flags; /* requestspan_py.KNOWN_TRACE_FLAGS; -1 until configure() */
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

static PyMethodDef spans_methods[] = {
    {"format_traceparent", (PyCFunction)(void (*)(void))format_traceparent, METH_FASTCALL,
     format_traceparent_doc},
    {"without_keys", (PyCFunction)(void (*)(void))without_keys, METH_FASTCALL,
     without_keys_doc},
    {"untracked", (PyCFunction)untracked, METH_O, untracked_doc},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     configure_doc},
    {NULL, NULL, 0, NULL},
};

static int
spans_exec(PyObject *module)
{
    ((SpansState *)PyModule_GetState(module))->known_trace_flags = -1;
    return 0;
}

static PyModuleDef_Slot spans_slots[] = {
    {Py_mod_exec, spans_exec},
    {0, NULL},
};

static struct PyModuleDef spans_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hooktel.otel.spans.requestspan",
    .m_doc = "The span bridge's helpers: compiled twins of hooktel.otel.spans.requestspan_py.",
    .m_size = sizeof(SpansState),
    .m_methods = spans_methods,
    .m_slots = spans_slots,
};

PyMODINIT_FUNC
PyInit_requestspan(void)
{
    return PyModuleDef_Init(&spans_module);
}
