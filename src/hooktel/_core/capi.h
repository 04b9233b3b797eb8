/* The C API every hooktel extension is written against: CPython's public API only.
 *
 * Each extension includes this header first, and nothing of CPython's private API.
 * A public function newer than Python 3.10 comes from the vendored
 * pythoncapi_compat.h (python/pythoncapi-compat); the few it does not provide are
 * backported below, with the public API of the versions that lack them. Besides
 * those, the one helper the extensions share: an id as big-endian bytes.
 */
#ifndef HOOKTEL_CAPI_H
#define HOOKTEL_CAPI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include "pythoncapi_compat.h"

#if PY_VERSION_HEX < 0x030B0000
/* Public from 3.11: the module of the first class in `type`'s MRO made by a module
 * of `def` (borrowed), or TypeError. 3.10 has PyType_GetModule for one class. */
static inline PyObject *
PyType_GetModuleByDef(PyTypeObject *type, PyModuleDef *def)
{
    PyObject *mro = type->tp_mro;
    for (Py_ssize_t i = 0; mro != NULL && i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (!PyType_HasFeature(base, Py_TPFLAGS_HEAPTYPE)) {
            continue; /* a static type has no module */
        }
        PyObject *module = PyType_GetModule(base);
        if (module == NULL) {
            PyErr_Clear(); /* a heap type made without a module */
        }
        else if (PyModule_GetDef(module) == def) {
            return module;
        }
    }
    PyErr_Format(PyExc_TypeError,
                 "PyType_GetModuleByDef: No superclass of '%s' has the given module",
                 type->tp_name);
    return NULL;
}
#endif

#if PY_VERSION_HEX < 0x030C0000
/* Public from 3.12: the exception being raised, taken (a new reference, or NULL)... */
static inline PyObject *
PyErr_GetRaisedException(void)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value;
}

/* ...and put back (stolen; NULL clears it). */
static inline void
PyErr_SetRaisedException(PyObject *exc)
{
    if (exc == NULL) {
        PyErr_Clear();
        return;
    }
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
}
#endif

/* `number` (an int) as `nbytes` (8 or 16) big-endian bytes at `raw`: OverflowError for
 * a negative or too large value, as int.to_bytes(nbytes, "big"). */
static inline int
unsigned_bytes(PyObject *number, unsigned char *raw, int nbytes)
{
    int overflow;
    long long small = PyLong_AsLongLongAndOverflow(number, &overflow);
    if (small == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow < 0 || (!overflow && small < 0)) {
        PyErr_SetString(PyExc_OverflowError, "can't convert negative int to unsigned");
        return -1;
    }
    uint64_t words[2] = {0, (uint64_t)small}; /* most significant first */
    if (overflow) {
#if PY_VERSION_HEX >= 0x030D0000
        Py_ssize_t needed = PyLong_AsNativeBytes(
            number, raw, nbytes, Py_ASNATIVEBYTES_BIG_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER);
        if (needed > nbytes) {
            PyErr_SetString(PyExc_OverflowError, "int too big to convert");
        }
        return needed < 0 || needed > nbytes ? -1 : 0;
#else
        if (nbytes == 8) {
            words[1] = PyLong_AsUnsignedLongLong(number);
        }
        else {
            PyObject *shift = PyLong_FromLong(64); /* a small int: not allocated */
            PyObject *high = shift == NULL ? NULL : PyNumber_Rshift(number, shift);
            Py_XDECREF(shift);
            if (high == NULL) {
                return -1;
            }
            words[0] = PyLong_AsUnsignedLongLong(high);
            Py_DECREF(high);
            words[1] = PyLong_AsUnsignedLongLongMask(number);
        }
        if (PyErr_Occurred()) {
            return -1;
        }
#endif
    }
    for (int i = 0; i < nbytes; i++) {
        raw[i] = (unsigned char)(words[(16 - nbytes + i) / 8] >> (8 * (7 - i % 8)));
    }
    return 0;
}

#endif
