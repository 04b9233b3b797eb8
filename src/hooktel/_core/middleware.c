/* What the ASGI and WSGI middleware types share (twin of what hooktel.asgi's and
 * hooktel.wsgi's TelemetryMiddleware share): the wrapped `app`, construction, and
 * their part in garbage collection. The call itself is middleware_call (core.h). */
#include "core.h"

PyObject *
middleware_new(PyTypeObject *type, PyObject *args, PyObject *kwargs, vectorcallfunc call)
{
    PyObject *app;
    static char *names[] = {"app", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:TelemetryMiddleware", names, &app)) {
        return NULL;
    }
    Middleware *self = (Middleware *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->state = core_state_of_type(type);
    self->app = Py_NewRef(app);
    self->vectorcall = call;
    return (PyObject *)self;
}

int
middleware_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(((Middleware *)self)->app);
    return 0;
}

int
middleware_clear(PyObject *self)
{
    Py_CLEAR(((Middleware *)self)->app);
    return 0;
}

void
middleware_dealloc(PyObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    middleware_clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyMemberDef middleware_members[] = {
    {"app", T_OBJECT_EX, offsetof(Middleware, app), 0, "The wrapped app."},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Middleware, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};
