/* The stack depot's key in C: walking Python frames costs ~100 ns a frame in Python.
 *
 * stack_key(skip, depth) -> (id(code), lasti, id(code), lasti, ...) for up to `depth`
 * frames, starting `skip` frames above the Python caller. Built as an optional
 * extension: hwemu/stackdepot.py walks the frames itself when it is missing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

static PyObject *stack_key(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "stack_key(skip, depth)");
        return NULL;
    }
    long skip = PyLong_AsLong(args[0]);
    long depth = PyLong_AsLong(args[1]);
    if ((skip == -1 || depth == -1) && PyErr_Occurred())
        return NULL;
    PyFrameObject *frame = PyEval_GetFrame();   /* borrowed: the caller's frame */
    Py_XINCREF(frame);
    while (frame != NULL && skip-- > 0) {
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    PyObject *key = PyTuple_New(2 * depth);
    if (key == NULL) {
        Py_XDECREF(frame);
        return NULL;
    }
    Py_ssize_t n = 0;
    while (frame != NULL && n < 2 * depth) {
        PyCodeObject *code = PyFrame_GetCode(frame);
        PyTuple_SET_ITEM(key, n++, PyLong_FromVoidPtr(code));
        PyTuple_SET_ITEM(key, n++, PyLong_FromLong(PyFrame_GetLasti(frame)));
        Py_DECREF(code);
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    Py_XDECREF(frame);
    if (n < 2 * depth && _PyTuple_Resize(&key, n) < 0)
        return NULL;
    return key;
}

static PyMethodDef methods[] = {
    {"stack_key", (PyCFunction)(void (*)(void))stack_key, METH_FASTCALL,
     "stack_key(skip, depth) -> tuple of (id(code), lasti) pairs"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hwemu._speedups", NULL, -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
