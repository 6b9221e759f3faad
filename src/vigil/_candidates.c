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
#include <stdint.h>

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

/* ------------------------------------------------------------------------------------------
 * Automaton: a multi-literal matcher as a dense DFA over byte classes.
 *
 * pyahocorasick walks a sparse trie per character; on the long fields of attack events
 * (command lines, the whole-event text) that walk was most of the index's time. This one is
 * the same Aho-Corasick automaton with every transition precomputed (goto + failure links
 * folded into one table), over the UTF-8 bytes of the literals and of the text: one table
 * load per byte. Matching UTF-8 bytes finds exactly the code-point matches, as UTF-8 is
 * self-synchronising (an encoded literal occurs in an encoded text only at character
 * boundaries). Bytes that occur in no literal share one class, so the table has
 * states x (distinct literal bytes + 1) entries.
 * ------------------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    int32_t nclasses;
    int32_t nstates;
    uint8_t cls[256];
    int32_t *next;         /* nstates * nclasses, or NULL when next16 holds the table */
    uint16_t *next16;      /* the same table when every state number fits 16 bits */
    int32_t *out_link;     /* nearest proper suffix state with an output, or -1 */
    PyObject **out;        /* positions tuple of the literal ending at a state, or NULL */
    uint8_t *has_out;      /* out[s] != NULL or out_link[s] != -1 */
    PyObject *words;       /* the literals (tuple), for search() on text UTF-8 cannot hold */
} Automaton;

static void
automaton_dealloc(Automaton *self)
{
    if (self->out != NULL) {
        for (int32_t i = 0; i < self->nstates; i++) {
            Py_XDECREF(self->out[i]);
        }
    }
    PyMem_Free(self->next);
    PyMem_Free(self->next16);
    PyMem_Free(self->out_link);
    PyMem_Free(self->out);
    PyMem_Free(self->has_out);
    Py_XDECREF(self->words);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Automaton(words: tuple[str, ...], positions: tuple[tuple[int, ...], ...]) */
static PyObject *
automaton_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *words, *positions;
    if (!PyArg_ParseTuple(args, "O!O!:Automaton", &PyTuple_Type, &words, &PyTuple_Type,
                          &positions)) {
        return NULL;
    }
    Py_ssize_t nwords = PyTuple_GET_SIZE(words);
    if (PyTuple_GET_SIZE(positions) != nwords) {
        PyErr_SetString(PyExc_ValueError, "words and positions differ in length");
        return NULL;
    }
    /* Byte classes and the trie's size bound. */
    uint8_t used[256] = {0};
    Py_ssize_t total = 1;
    for (Py_ssize_t w = 0; w < nwords; w++) {
        PyObject *word = PyTuple_GET_ITEM(words, w);
        if (!PyUnicode_Check(word) || !PyTuple_Check(PyTuple_GET_ITEM(positions, w))) {
            PyErr_SetString(PyExc_TypeError, "words must be str, positions tuples");
            return NULL;
        }
        Py_ssize_t n;
        const char *bytes = PyUnicode_AsUTF8AndSize(word, &n);
        if (bytes == NULL) {
            return NULL;
        }
        if (n == 0) {
            PyErr_SetString(PyExc_ValueError, "an empty literal matches everywhere");
            return NULL;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            used[(uint8_t)bytes[i]] = 1;
        }
        total += n;
    }
    if (total > INT32_MAX / 257) {
        PyErr_SetString(PyExc_OverflowError, "too many literal bytes");
        return NULL;
    }
    Automaton *self = (Automaton *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(words);
    self->words = words;
    /* At most 244 classes: UTF-8 never holds the bytes 0xC0, 0xC1 and 0xF5-0xFF. */
    int32_t nclasses = 1;
    for (int b = 0; b < 256; b++) {
        self->cls[b] = used[b] ? (uint8_t)nclasses++ : 0;
    }
    self->nclasses = nclasses;
    /* The table grows (doubling) as the trie does: the sum of the literals' lengths bounds the
     * states but shared prefixes keep far fewer. */
    Py_ssize_t capacity = total < 1024 ? total : 1024;
    self->next = PyMem_Malloc(sizeof(int32_t) * (size_t)capacity * (size_t)nclasses);
    self->out_link = PyMem_Malloc(sizeof(int32_t) * (size_t)total);
    self->out = PyMem_Calloc((size_t)total, sizeof(PyObject *));
    self->has_out = PyMem_Calloc((size_t)total, 1);
    int32_t *queue = PyMem_Malloc(sizeof(int32_t) * (size_t)total);
    int32_t *fail = PyMem_Malloc(sizeof(int32_t) * (size_t)total);
    if (self->next == NULL || self->out_link == NULL || self->out == NULL ||
        self->has_out == NULL || queue == NULL || fail == NULL) {
        PyMem_Free(queue);
        PyMem_Free(fail);
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    memset(self->next, 0xff, sizeof(int32_t) * (size_t)capacity * (size_t)nclasses); /* -1 */
    self->nstates = 1;
    /* The trie. */
    for (Py_ssize_t w = 0; w < nwords; w++) {
        Py_ssize_t n;
        const char *bytes = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(words, w), &n);
        int32_t state = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            size_t at = (size_t)state * nclasses + self->cls[(uint8_t)bytes[i]];
            if (self->next[at] < 0) {
                if (self->nstates == capacity) {
                    Py_ssize_t grown = capacity * 2 < total ? capacity * 2 : total;
                    int32_t *bigger = PyMem_Realloc(
                        self->next, sizeof(int32_t) * (size_t)grown * (size_t)nclasses);
                    if (bigger == NULL) {
                        PyMem_Free(queue);
                        PyMem_Free(fail);
                        Py_DECREF(self);
                        return PyErr_NoMemory();
                    }
                    memset(bigger + (size_t)capacity * nclasses, 0xff,
                           sizeof(int32_t) * (size_t)(grown - capacity) * (size_t)nclasses);
                    self->next = bigger;
                    capacity = grown;
                }
                self->next[at] = self->nstates++;
            }
            state = self->next[at];
        }
        PyObject *pos = PyTuple_GET_ITEM(positions, w);
        Py_INCREF(pos);
        Py_XSETREF(self->out[state], pos); /* a repeated word: the last one's positions */
    }
    /* Failure links, breadth first, folded into the table. */
    Py_ssize_t head = 0, tail = 0;
    fail[0] = 0;
    self->out_link[0] = -1;
    for (int32_t c = 0; c < nclasses; c++) {
        int32_t t = self->next[c];
        if (t < 0) {
            self->next[c] = 0;
        }
        else {
            fail[t] = 0;
            self->out_link[t] = -1;
            queue[tail++] = t;
        }
    }
    while (head < tail) {
        int32_t s = queue[head++];
        for (int32_t c = 0; c < nclasses; c++) {
            int32_t *slot = &self->next[(size_t)s * nclasses + c];
            int32_t via_fail = self->next[(size_t)fail[s] * nclasses + c];
            if (*slot < 0) {
                *slot = via_fail;
            }
            else {
                int32_t t = *slot;
                fail[t] = via_fail;
                self->out_link[t] = self->out[via_fail] != NULL ? via_fail
                                                                : self->out_link[via_fail];
                queue[tail++] = t;
            }
        }
    }
    for (int32_t s = 0; s < self->nstates; s++) {
        self->has_out[s] = self->out[s] != NULL || self->out_link[s] >= 0;
    }
    PyMem_Free(queue);
    PyMem_Free(fail);
    /* Keep only the states built (shared prefixes leave the bound loose), as 16-bit state
     * numbers when they fit: half the memory (the command-line index of SigmaHQ's process
     * creation rules has ~59,000 states over ~150 byte classes). */
    size_t cells = (size_t)self->nstates * (size_t)nclasses;
    if (self->nstates <= UINT16_MAX) {
        self->next16 = PyMem_Malloc(sizeof(uint16_t) * cells);
        if (self->next16 == NULL) {
            Py_DECREF(self);
            return PyErr_NoMemory();
        }
        for (size_t i = 0; i < cells; i++) {
            self->next16[i] = (uint16_t)self->next[i];
        }
        PyMem_Free(self->next);
        self->next = NULL;
    }
    else {
        int32_t *shrunk = PyMem_Realloc(self->next, sizeof(int32_t) * cells);
        if (shrunk != NULL) {
            self->next = shrunk;
        }
    }
    return (PyObject *)self;
}

/* Automaton.search(text) -> bool: does any literal occur in ``text`` (a str)? One pass over
 * its UTF-8 bytes, stopping at the first hit: what the generated rule matchers use instead of
 * a long chain of ``literal in text`` tests. Text UTF-8 cannot hold (lone surrogates) is
 * searched literal by literal. */
static PyObject *
automaton_search(Automaton *self, PyObject *value)
{
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "search() needs a str");
        return NULL;
    }
    Py_ssize_t n;
    const char *text = PyUnicode_AsUTF8AndSize(value, &n);
    if (text == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            return NULL;
        }
        PyErr_Clear();
        Py_ssize_t nwords = PyTuple_GET_SIZE(self->words);
        for (Py_ssize_t j = 0; j < nwords; j++) {
            int has = PyUnicode_Contains(value, PyTuple_GET_ITEM(self->words, j));
            if (has != 0) {
                return has < 0 ? NULL : Py_NewRef(Py_True);
            }
        }
        Py_RETURN_FALSE;
    }
    if (self->has_out[0]) { /* an empty literal: in every text */
        Py_RETURN_TRUE;
    }
    const uint8_t *cls = self->cls;
    const size_t nclasses = (size_t)self->nclasses;
    int32_t state = 0;
    if (self->next16 != NULL) {
        const uint16_t *next16 = self->next16;
        for (Py_ssize_t i = 0; i < n; i++) {
            state = next16[(size_t)state * nclasses + cls[(uint8_t)text[i]]];
            if (self->has_out[state]) {
                Py_RETURN_TRUE;
            }
        }
    }
    else {
        for (Py_ssize_t i = 0; i < n; i++) {
            state = self->next[(size_t)state * nclasses + cls[(uint8_t)text[i]]];
            if (self->has_out[state]) {
                Py_RETURN_TRUE;
            }
        }
    }
    Py_RETURN_FALSE;
}

static PyMethodDef automaton_methods[] = {
    {"search", (PyCFunction)automaton_search, METH_O,
     "search(text) -> bool: does any of the literals occur in text?"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AutomatonType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "vigil._candidates.Automaton",
    .tp_basicsize = sizeof(Automaton),
    .tp_dealloc = (destructor)automaton_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Automaton(words, positions): the literals of one index field as a dense DFA.",
    .tp_new = automaton_new,
    .tp_methods = automaton_methods,
};

/* Add the positions of every literal of ``a`` occurring in ``value`` (an exact str). Returns
 * 1 when the text cannot be encoded as UTF-8 (lone surrogates): the caller scans it with
 * pyahocorasick instead. */
static int
scan_dfa(PyObject *found, Automaton *a, PyObject *value)
{
    Py_ssize_t n;
    const char *text = PyUnicode_AsUTF8AndSize(value, &n);
    if (text == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            return 1;
        }
        return -1;
    }
    const uint8_t *cls = a->cls;
    const size_t nclasses = (size_t)a->nclasses;
    int32_t state = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t cell = (size_t)state * nclasses + cls[(uint8_t)text[i]];
        state = a->next16 != NULL ? (int32_t)a->next16[cell] : a->next[cell];
        if (a->has_out[state]) {
            for (int32_t s = state; s >= 0; s = a->out_link[s]) {
                if (a->out[s] != NULL && add_all(found, a->out[s]) < 0) {
                    return -1;
                }
            }
        }
    }
    return 0;
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
    if (kind == 5 && PyTuple_GET_SIZE(step) == 4 &&
        Py_IS_TYPE(PyTuple_GET_ITEM(step, 2), &AutomatonType)) {
        /* (5, i, Automaton, iter_fn): the DFA, or pyahocorasick for text UTF-8 cannot hold */
        int rc = scan_dfa(found, (Automaton *)PyTuple_GET_ITEM(step, 2), value);
        return rc == 1 ? scan_automaton(found, PyTuple_GET_ITEM(step, 3), value) : rc;
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
        if ((kind >= 0 && kind <= 2) || kind == 5) {
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
    if (str_number_keys == NULL || PyType_Ready(&AutomatonType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&AutomatonType);
    if (PyModule_AddObject(module, "Automaton", (PyObject *)&AutomatonType) < 0) {
        Py_DECREF(&AutomatonType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
