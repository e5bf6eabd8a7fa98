/* The stack depot's key in C: walking Python frames costs ~100 ns a frame in Python.
 *
 * stack_key(skip, depth) -> bytes: native int64 pairs (id(code), lasti) for up to
 * `depth` frames, starting `skip` frames above the Python caller. Bytes, not a tuple of
 * ints: no int objects to make, and one memcmp-able buffer to hash. Built as an optional
 * extension: hwemu/stackdepot.py walks the frames itself when it is missing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <stdint.h>

#define MAX_DEPTH 64

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
    if (depth < 0 || depth > MAX_DEPTH) {
        Py_XDECREF(frame);
        PyErr_SetString(PyExc_ValueError, "stack_key: depth out of range");
        return NULL;
    }
    int64_t key[2 * MAX_DEPTH];
    Py_ssize_t n = 0;
    while (frame != NULL && n < 2 * depth) {
        PyCodeObject *code = PyFrame_GetCode(frame);
        key[n++] = (int64_t)(intptr_t)code;
        key[n++] = PyFrame_GetLasti(frame);
        Py_DECREF(code);
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    Py_XDECREF(frame);
    return PyBytes_FromStringAndSize((const char *)key, n * (Py_ssize_t)sizeof(int64_t));
}

static PyMethodDef methods[] = {
    {"stack_key", (PyCFunction)(void (*)(void))stack_key, METH_FASTCALL,
     "stack_key(skip, depth) -> bytes of int64 (id(code), lasti) pairs"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hwemu._speedups", NULL, -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
