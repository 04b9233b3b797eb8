/* hooktel._core: the native hook core.
 *
 * The compiled twin of hooktel's Python hook layer. The Python modules are the
 * specification: every function here has a Python twin it is tested against
 * (tests/native/), and HOOKTEL_PURE_PYTHON=1 runs the twin instead.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static const char HEX[] = "0123456789abcdef";

static int
write_hex(char *out, PyObject *number, Py_ssize_t nbytes)
{
    unsigned char raw[16];
    /* Big-endian, unsigned: OverflowError for a negative or too large id, as int.to_bytes. */
#if PY_VERSION_HEX >= 0x030D0000
    if (_PyLong_AsByteArray((PyLongObject *)number, raw, (size_t)nbytes, 0, 0, 1) < 0) {
#else
    if (_PyLong_AsByteArray((PyLongObject *)number, raw, (size_t)nbytes, 0, 0) < 0) {
#endif
        return -1;
    }
    for (Py_ssize_t i = 0; i < nbytes; i++) {
        out[2 * i] = HEX[raw[i] >> 4];
        out[2 * i + 1] = HEX[raw[i] & 0xf];
    }
    return 0;
}

PyDoc_STRVAR(format_traceparent_doc,
"format_traceparent(trace_id, span_id, trace_flags) -> str\n\n"
"A version 00 traceparent value (twin of hooktel._traceparent.format_traceparent).");

static PyObject *
format_traceparent(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "format_traceparent() takes 3 arguments (%zd given)", nargs);
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
    char out[55] = "00-";
    if (write_hex(out + 3, args[0], 16) < 0 || write_hex(out + 36, args[1], 8) < 0) {
        return NULL;
    }
    out[35] = out[52] = '-';
    out[53] = HEX[flags >> 4];
    out[54] = HEX[flags & 0xf];
    return PyUnicode_FromStringAndSize(out, 55);
}

static PyMethodDef core_methods[] = {
    {"format_traceparent", (PyCFunction)(void (*)(void))format_traceparent, METH_FASTCALL,
     format_traceparent_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot core_slots[] = {
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hooktel._core",
    .m_doc = "The native hook core: compiled twins of hooktel's Python hook layer.",
    .m_size = 0,
    .m_methods = core_methods,
    .m_slots = core_slots,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&core_module);
}
