/* vigil._candidates: the candidate-index probe of a bucket's generated ``run`` in one C call.
 *
 * ``collect(plan, always, S, F, C) -> set`` does what the Python code that
 * ``codegen.bucket_function`` emits between the prelowering and the candidate loop does (that
 * code stays the reference and runs when the extension is absent): start from the positions in
 * ``always``, then for each step of ``plan`` add the positions of the entries whose witness the
 * event holds. ``S`` is the tuple of prelowered field values (str or None) the kernel
 * ``_speedups.lower_fields`` returned, ``F`` the event's raw fields (a dict), ``C`` its
 * ``EventContext``. Steps (tuples, built once per bucket by codegen):
 *
 *   (0, i, iter_fn)           for _, p in iter_fn(S[i]): found.update(p)      (Aho-Corasick)
 *   (1, i, words, positions)  if words[j] in S[i]: found.update(positions[j])
 *   (2, i, table)             p = table.get(S[i]); if p is not None: found.update(p)
 *   (3, method, anchors, step) t = C.<method>(); if anchors is None or any(a in t for a in
 *                             anchors): run step (kind 0 or 1) with t as the value
 *   (4, key, table)           number witnesses: v = F.get(key); an exact int probes str(v),
 *                             another non-None value probes each of C.number_keys(key)
 *
 * Steps 0-2 skip a None value (an absent or null field holds no literal). Every position added
 * is a tuple of ints from the index; the set's contents, and so the candidates evaluated, are
 * exactly those of the Python code. tests/detect/sigma/test_candidates_kernel.py compares both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *str_number_keys; /* "number_keys" */

static int
add_all(PyObject *found, PyObject *positions)
{
    if (!PyTuple_Check(positions)) {
        PyErr_SetString(PyExc_TypeError, "candidate positions must be a tuple");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(positions);
    for (Py_ssize_t k = 0; k < n; k++) {
        if (PySet_Add(found, PyTuple_GET_ITEM(positions, k)) < 0) {
            return -1;
        }
    }
    return 0;
}

static int probe_table(PyObject *found, PyObject *table, PyObject *key);

/* Each item of ``iterable``: with ``table``, a key to probe it with; without, an automaton's
 * (end, positions) pair whose positions are added. */
static int
add_from_iterable(PyObject *found, PyObject *iterable, PyObject *table)
{
    PyObject *it = PyObject_GetIter(iterable);
    if (it == NULL) {
        return -1;
    }
    PyObject *item;
    int rc = 0;
    while ((item = PyIter_Next(it)) != NULL) {
        if (table != NULL) {
            rc = probe_table(found, table, item);
        }
        else if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2) {
            rc = add_all(found, PyTuple_GET_ITEM(item, 1));
        }
        else {
            PyErr_SetString(PyExc_TypeError, "automaton items must be (end, positions)");
            rc = -1;
        }
        Py_DECREF(item);
        if (rc < 0) {
            break;
        }
    }
    Py_DECREF(it);
    if (rc == 0 && PyErr_Occurred()) {
        rc = -1;
    }
    return rc;
}

/* for _, p in iter_fn(value): found.update(p) */
static int
scan_automaton(PyObject *found, PyObject *iter_fn, PyObject *value)
{
    PyObject *result = PyObject_CallOneArg(iter_fn, value);
    if (result == NULL) {
        return -1;
    }
    int rc = add_from_iterable(found, result, NULL);
    Py_DECREF(result);
    return rc;
}

/* if words[j] in value: found.update(positions[j]) */
static int
scan_words(PyObject *found, PyObject *words, PyObject *positions, PyObject *value)
{
    if (!PyTuple_Check(words) || !PyTuple_Check(positions) ||
        PyTuple_GET_SIZE(words) != PyTuple_GET_SIZE(positions)) {
        PyErr_SetString(PyExc_TypeError, "words and positions must be tuples of one length");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(words);
    for (Py_ssize_t j = 0; j < n; j++) {
        int has = PyUnicode_Contains(value, PyTuple_GET_ITEM(words, j));
        if (has < 0) {
            return -1;
        }
        if (has && add_all(found, PyTuple_GET_ITEM(positions, j)) < 0) {
            return -1;
        }
    }
    return 0;
}

static int
probe_table(PyObject *found, PyObject *table, PyObject *key)
{
    if (!PyDict_Check(table)) {
        PyErr_SetString(PyExc_TypeError, "an index table must be a dict");
        return -1;
    }
    PyObject *hit = PyDict_GetItemWithError(table, key); /* borrowed */
    if (hit == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    return add_all(found, hit);
}

/* Step kinds 0 and 1 applied to ``value`` (an exact str). */
static int
scan_value(PyObject *found, PyObject *step, PyObject *value)
{
    long kind = PyTuple_GET_SIZE(step) ? PyLong_AsLong(PyTuple_GET_ITEM(step, 0)) : -1;
    if (kind == 0 && PyTuple_GET_SIZE(step) == 3) {
        return scan_automaton(found, PyTuple_GET_ITEM(step, 2), value);
    }
    if (kind == 1 && PyTuple_GET_SIZE(step) == 4) {
        return scan_words(found, PyTuple_GET_ITEM(step, 2), PyTuple_GET_ITEM(step, 3), value);
    }
    if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "a text step must hold a scan step (kind 0 or 1)");
    }
    return -1;
}

static int
keyword_step(PyObject *found, PyObject *step, PyObject *ctx)
{
    /* (3, method, anchors, inner) */
    if (PyTuple_GET_SIZE(step) != 4 || !PyTuple_Check(PyTuple_GET_ITEM(step, 3))) {
        PyErr_SetString(PyExc_ValueError, "malformed keyword step");
        return -1;
    }
    PyObject *text = PyObject_CallMethodNoArgs(ctx, PyTuple_GET_ITEM(step, 1));
    if (text == NULL) {
        return -1;
    }
    if (!PyUnicode_CheckExact(text)) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_TypeError, "the event text must be a str");
        return -1;
    }
    int rc = 0;
    PyObject *anchors = PyTuple_GET_ITEM(step, 2);
    int wanted = 1;
    if (anchors != Py_None) {
        wanted = 0;
        Py_ssize_t n = PyTuple_Check(anchors) ? PyTuple_GET_SIZE(anchors) : 0;
        for (Py_ssize_t j = 0; j < n && !wanted; j++) {
            int has = PyUnicode_Contains(text, PyTuple_GET_ITEM(anchors, j));
            if (has < 0) {
                rc = -1;
                break;
            }
            wanted = has;
        }
    }
    if (rc == 0 && wanted) {
        rc = scan_value(found, PyTuple_GET_ITEM(step, 3), text);
    }
    Py_DECREF(text);
    return rc;
}

static int
number_step(PyObject *found, PyObject *step, PyObject *fields, PyObject *ctx)
{
    /* (4, key, table) */
    if (PyTuple_GET_SIZE(step) != 3) {
        PyErr_SetString(PyExc_ValueError, "malformed number step");
        return -1;
    }
    PyObject *key = PyTuple_GET_ITEM(step, 1);
    PyObject *table = PyTuple_GET_ITEM(step, 2);
    PyObject *value = PyDict_GetItemWithError(fields, key); /* borrowed */
    if (value == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (value == Py_None) {
        return 0;
    }
    if (PyLong_CheckExact(value)) { /* an int's canonical number is str(v) */
        PyObject *text = PyObject_Str(value);
        if (text == NULL) {
            return -1;
        }
        int rc = probe_table(found, table, text);
        Py_DECREF(text);
        return rc;
    }
    PyObject *keys = PyObject_CallMethodOneArg(ctx, str_number_keys, key);
    if (keys == NULL) {
        return -1;
    }
    int rc = add_from_iterable(found, keys, table);
    Py_DECREF(keys);
    return rc;
}

static int
field_step(PyObject *found, PyObject *step, long kind, PyObject *lowered)
{
    Py_ssize_t size = PyTuple_GET_SIZE(step);
    if (size < 3) {
        PyErr_SetString(PyExc_ValueError, "malformed field step");
        return -1;
    }
    Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(step, 1));
    if (i == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (i < 0 || i >= PyTuple_GET_SIZE(lowered)) {
        PyErr_SetString(PyExc_IndexError, "field step index out of range");
        return -1;
    }
    PyObject *value = PyTuple_GET_ITEM(lowered, i);
    if (value == Py_None) {
        return 0;
    }
    if (kind == 2) {
        return probe_table(found, PyTuple_GET_ITEM(step, 2), value);
    }
    if (!PyUnicode_CheckExact(value)) {
        PyErr_SetString(PyExc_TypeError, "a prelowered value must be a str or None");
        return -1;
    }
    return scan_value(found, step, value);
}

static PyObject *
collect(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "collect(plan, always, S, F, C) takes 5 arguments");
        return NULL;
    }
    PyObject *plan = args[0], *always = args[1], *lowered = args[2], *fields = args[3];
    PyObject *ctx = args[4];
    if (!PyTuple_Check(plan) || !PyTuple_Check(lowered) || !PyDict_Check(fields)) {
        PyErr_SetString(PyExc_TypeError, "collect(plan: tuple, always, S: tuple, F: dict, C)");
        return NULL;
    }
    PyObject *found = PySet_New(always == Py_None ? NULL : always);
    if (found == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(plan);
    for (Py_ssize_t s = 0; s < n; s++) {
        PyObject *step = PyTuple_GET_ITEM(plan, s);
        if (!PyTuple_Check(step) || PyTuple_GET_SIZE(step) < 1) {
            PyErr_SetString(PyExc_TypeError, "a plan step must be a non-empty tuple");
            goto fail;
        }
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(step, 0));
        int rc;
        if (kind >= 0 && kind <= 2) {
            rc = field_step(found, step, kind, lowered);
        }
        else if (kind == 3) {
            rc = keyword_step(found, step, ctx);
        }
        else if (kind == 4) {
            rc = number_step(found, step, fields, ctx);
        }
        else {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_ValueError, "unknown plan step kind %ld", kind);
            }
            rc = -1;
        }
        if (rc < 0) {
            goto fail;
        }
    }
    return found;
fail:
    Py_DECREF(found);
    return NULL;
}

static PyMethodDef methods[] = {
    {"collect", (PyCFunction)(void (*)(void))collect, METH_FASTCALL,
     "collect(plan, always, S, F, C) -> set of candidate positions (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "vigil._candidates",
    "The candidate-index probe of a bucket's generated run, in C.", -1, methods,
};

PyMODINIT_FUNC
PyInit__candidates(void)
{
    str_number_keys = PyUnicode_InternFromString("number_keys");
    if (str_number_keys == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
