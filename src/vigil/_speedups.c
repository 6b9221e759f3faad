/* vigil._speedups: C versions of three per-event kernels of the detection hot path.
 *
 * Each function does exactly what a piece of Python code does (named at each function) for the
 * common value shapes, and returns None ("not handled") for any other shape, so the Python code
 * stays the reference and does those events itself. tests/test_speedups.py compares both.
 *
 * Lowering follows str.lower(): ASCII and Latin-1 text through a byte table (Latin-1 characters
 * lower within Latin-1, and no non-ASCII one lowers to ASCII), any wider string through its own
 * str.lower().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static Py_UCS1 latin1_lower[256];
static PyObject *str_lower;       /* "lower" */
static PyObject *str_none;        /* "none" */
static PyObject *str_separator;   /* "\x1f" */
static PyObject *str_system;      /* "System" */
static PyObject *str_event_data;  /* "EventData" */
static PyObject *str_user_data;   /* "UserData" */
static PyObject *str_attrs;       /* "#attributes" */
static PyObject *str_text;        /* "#text" */
static PyObject *str_data;        /* "Data" */
static PyObject *str_event_id;    /* "EventID" */
static PyObject *str_space;       /* " " */
static PyObject *str_empty;       /* "" */
static PyObject *str_attrs_suffix; /* "_attributes" */

#define SEPARATOR 0x1f
#define ATTRS_SUFFIX "_attributes"
#define ATTRS_SUFFIX_LEN 11

/* A 1-byte-kind string (ASCII or Latin-1) lowered through the table; the string itself (a new
 * reference) when no character changes, as the result is equal either way. */
static PyObject *
lower_narrow(PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    const Py_UCS1 *src = PyUnicode_1BYTE_DATA(s);
    Py_ssize_t i = 0;
    while (i < n && latin1_lower[src[i]] == src[i]) {
        i++;
    }
    if (i == n) {
        Py_INCREF(s);
        return s;
    }
    PyObject *out = PyUnicode_New(n, PyUnicode_MAX_CHAR_VALUE(s));
    if (out == NULL) {
        return NULL;
    }
    Py_UCS1 *dst = PyUnicode_1BYTE_DATA(out);
    memcpy(dst, src, (size_t)i);
    for (; i < n; i++) {
        dst[i] = latin1_lower[src[i]];
    }
    return out;
}

/* str.lower() of an exact str. */
static PyObject *
lower_str(PyObject *s)
{
    if (PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND) {
        return lower_narrow(s);
    }
    return PyObject_CallMethodNoArgs(s, str_lower);
}

/* --------------------------------------------------------------------------- lower_join */

#define STACK_PARTS 64

/* EventContext.string_text() (strings_only) / EventContext.text() for flat events: the dict's
 * values lowered and joined with "\x1f"; None when a value is of a type not handled here. */
static PyObject *
lower_join(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "lower_join(fields, strings_only)");
        return NULL;
    }
    PyObject *fields = args[0];
    if (!PyDict_Check(fields)) {
        PyErr_SetString(PyExc_TypeError, "lower_join: fields must be a dict");
        return NULL;
    }
    int strings_only = PyObject_IsTrue(args[1]);
    if (strings_only < 0) {
        return NULL;
    }

    /* Pass 1: the parts (strong references), their total length and whether all are narrow. */
    PyObject *stack[STACK_PARTS];
    PyObject **parts = stack;
    Py_ssize_t size = PyDict_GET_SIZE(fields);
    if (size > STACK_PARTS) {
        parts = PyMem_New(PyObject *, size);
        if (parts == NULL) {
            return PyErr_NoMemory();
        }
    }
    Py_ssize_t count = 0, total = 0, pos = 0;
    int narrow = 1, ascii = 1;
    PyObject *key, *value, *result = NULL;
    while (PyDict_Next(fields, &pos, &key, &value)) {
        PyObject *part;
        if (PyUnicode_CheckExact(value)) {
            Py_INCREF(value);
            part = value;
        }
        else if (value == Py_None) {
            if (strings_only) {
                continue;
            }
            Py_INCREF(str_none);
            part = str_none;
        }
        else if (PyLong_CheckExact(value)) {
            if (strings_only) {
                continue;
            }
            part = PyObject_Str(value);
            if (part == NULL) {
                goto done;
            }
        }
        else {
            /* floats, booleans, lists, dicts, subclasses: the Python code's business */
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        if (count == size) { /* cannot happen: PyDict_Next yields size items */
            Py_DECREF(part);
            PyErr_SetString(PyExc_RuntimeError, "lower_join: dict changed size");
            goto done;
        }
        parts[count++] = part;
        total += PyUnicode_GET_LENGTH(part);
        if (PyUnicode_KIND(part) != PyUnicode_1BYTE_KIND) {
            narrow = 0;
        }
        else if (!PyUnicode_IS_ASCII(part)) {
            ascii = 0;
        }
    }
    if (count > 1) {
        total += count - 1;
    }

    if (narrow) {
        /* One allocation, lowered while copying. A non-ASCII Latin-1 character stays non-ASCII
         * when lowered, so the result's maximum character class is that of the input. */
        result = PyUnicode_New(total, ascii ? 127 : 255);
        if (result == NULL) {
            goto done;
        }
        Py_UCS1 *dst = PyUnicode_1BYTE_DATA(result);
        for (Py_ssize_t i = 0; i < count; i++) {
            if (i) {
                *dst++ = SEPARATOR;
            }
            Py_ssize_t n = PyUnicode_GET_LENGTH(parts[i]);
            const Py_UCS1 *src = PyUnicode_1BYTE_DATA(parts[i]);
            for (Py_ssize_t j = 0; j < n; j++) {
                dst[j] = latin1_lower[src[j]];
            }
            dst += n;
        }
    }
    else {
        /* Some value beyond Latin-1: lower each value (as _lower_join does) and join. */
        PyObject *lowered = PyList_New(count);
        if (lowered == NULL) {
            goto done;
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *low = lower_str(parts[i]);
            if (low == NULL) {
                Py_DECREF(lowered);
                goto done;
            }
            PyList_SET_ITEM(lowered, i, low);
        }
        result = PyUnicode_Join(str_separator, lowered);
        Py_DECREF(lowered);
    }

done:
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_DECREF(parts[i]);
    }
    if (parts != stack) {
        PyMem_Free(parts);
    }
    return result;
}

/* --------------------------------------------------------------------------- lower_fields */

/* The generated prelower block (codegen.BucketSource.lower) for each name: a str value lowered,
 * None/absent as None, anything else through L[name] (LoweredFields.__missing__: numbers are
 * converted, lists raise NotFlat). Stores into L and returns the values as a tuple. */
static PyObject *
lower_fields(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "lower_fields(F, L, names)");
        return NULL;
    }
    PyObject *fields = args[0], *lowered = args[1], *names = args[2];
    if (!PyTuple_CheckExact(names)) {
        PyErr_SetString(PyExc_TypeError, "lower_fields: names must be a tuple");
        return NULL;
    }
    int fields_is_dict = PyDict_CheckExact(fields);
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    PyObject *out = PyTuple_New(n);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        PyObject *value; /* strong reference or NULL (absent) */
        if (fields_is_dict) {
            value = PyDict_GetItemWithError(fields, name);
            if (value == NULL && PyErr_Occurred()) {
                goto error;
            }
            Py_XINCREF(value);
        }
        else {
            value = PyObject_CallMethod(fields, "get", "O", name);
            if (value == NULL) {
                goto error;
            }
        }
        PyObject *low;
        if (value != NULL && PyUnicode_CheckExact(value)) {
            low = lower_str(value);
            Py_DECREF(value);
            if (low == NULL || PyObject_SetItem(lowered, name, low) < 0) {
                Py_XDECREF(low);
                goto error;
            }
        }
        else if (value == NULL || value == Py_None) {
            Py_XDECREF(value);
            low = Py_None;
            Py_INCREF(low);
            if (PyObject_SetItem(lowered, name, low) < 0) {
                Py_DECREF(low);
                goto error;
            }
        }
        else {
            Py_DECREF(value);
            low = PyObject_GetItem(lowered, name);
            if (low == NULL) {
                goto error;
            }
        }
        PyTuple_SET_ITEM(out, i, low);
    }
    return out;

error:
    Py_DECREF(out);
    return NULL;
}

/* --------------------------------------------------------------------------- flatten */

static int
is_scalar(PyObject *v)
{
    return v == Py_None || PyUnicode_CheckExact(v) || PyLong_CheckExact(v) ||
           PyFloat_CheckExact(v) || PyBool_Check(v);
}

static int
ends_with_attrs_suffix(PyObject *key)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    if (n < ATTRS_SUFFIX_LEN) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < ATTRS_SUFFIX_LEN; i++) {
        if (PyUnicode_READ_CHAR(key, n - ATTRS_SUFFIX_LEN + i) != (Py_UCS4)ATTRS_SUFFIX[i]) {
            return 0;
        }
    }
    return 1;
}

/* a + "_" + b for exact strs: f"{a}_{b}" without a format string (several per event). */
static PyObject *
join_underscore(PyObject *a, PyObject *b)
{
    Py_ssize_t la = PyUnicode_GET_LENGTH(a), lb = PyUnicode_GET_LENGTH(b);
    Py_UCS4 max = Py_MAX(PyUnicode_MAX_CHAR_VALUE(a), PyUnicode_MAX_CHAR_VALUE(b));
    PyObject *out = PyUnicode_New(la + 1 + lb, max);
    if (out == NULL) {
        return NULL;
    }
    if (PyUnicode_KIND(out) == PyUnicode_1BYTE_KIND) {
        Py_UCS1 *dst = PyUnicode_1BYTE_DATA(out);
        memcpy(dst, PyUnicode_1BYTE_DATA(a), (size_t)la);
        dst[la] = '_';
        memcpy(dst + la + 1, PyUnicode_1BYTE_DATA(b), (size_t)lb);
        return out;
    }
    PyUnicode_WRITE(PyUnicode_KIND(out), PyUnicode_DATA(out), la, '_');
    if (PyUnicode_CopyCharacters(out, 0, a, 0, la) < 0 ||
        PyUnicode_CopyCharacters(out, la + 1, b, 0, lb) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* 1 handled, 0 not handled (the caller gives up), -1 error. */
static int
flatten_system(PyObject *system, PyObject *fields)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(system, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            return 0;
        }
        if (is_scalar(value)) {
            if (value == Py_None) {
                /* separate_json_attributes: Provider: null beside Provider_attributes */
                PyObject *sibling = PyUnicode_Concat(key, str_attrs_suffix);
                if (sibling == NULL) {
                    return -1;
                }
                int has = PyDict_Contains(system, sibling);
                Py_DECREF(sibling);
                if (has < 0) {
                    return -1;
                }
                if (has) {
                    continue;
                }
            }
            if (PyDict_SetItem(fields, key, value) < 0) {
                return -1;
            }
            continue;
        }
        if (!PyDict_CheckExact(value) || PyDict_GET_SIZE(value) != 1) {
            return 0;
        }
        PyObject *attrs = PyDict_GetItemWithError(value, str_attrs);
        if (attrs == NULL) {
            return PyErr_Occurred() ? -1 : 0;
        }
        if (!PyDict_CheckExact(attrs) || ends_with_attrs_suffix(key)) {
            return 0;
        }
        Py_ssize_t apos = 0;
        PyObject *attr, *attr_value;
        while (PyDict_Next(attrs, &apos, &attr, &attr_value)) {
            if (!PyUnicode_CheckExact(attr)) {
                return 0;
            }
            PyObject *name = join_underscore(key, attr);
            if (name == NULL) {
                return -1;
            }
            int rc = PyDict_SetItem(fields, name, attr_value);
            Py_DECREF(name);
            if (rc < 0) {
                return -1;
            }
        }
    }
    /* EventID as an int when it is a digit string (str.isdigit() + int(): ASCII digits here;
     * other Unicode digits and very long strings are left to the Python code). */
    PyObject *event_id = PyDict_GetItemWithError(fields, str_event_id);
    if (event_id == NULL) {
        return PyErr_Occurred() ? -1 : 1;
    }
    if (!PyUnicode_Check(event_id)) {
        return 1;
    }
    if (!PyUnicode_CheckExact(event_id) || !PyUnicode_IS_ASCII(event_id)) {
        return 0;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(event_id);
    const Py_UCS1 *digits = PyUnicode_1BYTE_DATA(event_id);
    if (n == 0) {
        return 1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (digits[i] < '0' || digits[i] > '9') {
            return 1;
        }
    }
    if (n > 100) {
        return 0;
    }
    PyObject *number = PyLong_FromUnicodeObject(event_id, 10);
    if (number == NULL) {
        return -1;
    }
    int rc = PyDict_SetItem(fields, str_event_id, number);
    Py_DECREF(number);
    return rc < 0 ? -1 : 1;
}

/* 1 handled, 0 not handled, -1 error: _flatten_event_data's fast path only. */
static int
flatten_event_data(PyObject *data, PyObject *fields)
{
    if (!PyDict_CheckExact(data)) {
        return 0;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(data, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            return 0;
        }
        /* "Data", "#attributes", "#text": compared only when the first character fits */
        int special = 0;
        if (PyUnicode_GET_LENGTH(key) > 0) {
            Py_UCS4 first = PyUnicode_READ_CHAR(key, 0);
            if (first == 'D') {
                special = PyUnicode_Compare(key, str_data) == 0;
            }
            else if (first == '#') {
                special = PyUnicode_Compare(key, str_attrs) == 0 ||
                          PyUnicode_Compare(key, str_text) == 0;
            }
        }
        if (special || !(is_scalar(value) || PyList_CheckExact(value))) {
            return 0;
        }
    }
    return PyDict_Update(fields, data) < 0 ? -1 : 1;
}

static int
has_space(PyObject *key)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    if (PyUnicode_KIND(key) == PyUnicode_1BYTE_KIND) {
        return memchr(PyUnicode_1BYTE_DATA(key), ' ', (size_t)n) != NULL;
    }
    return PyUnicode_FindChar(key, ' ', 0, n, 1) >= 0; /* -2 (error) cannot happen here */
}

/* _add_spaceless_names: "Threat Name" also as "ThreatName" (setdefault). 0 if a key is not an
 * exact str, -1 on error, 1 done. */
static int
add_spaceless_names(PyObject *fields)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value, *spaced = NULL;
    while (PyDict_Next(fields, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            Py_XDECREF(spaced);
            return 0;
        }
        if (has_space(key)) {
            if (spaced == NULL && (spaced = PyList_New(0)) == NULL) {
                return -1;
            }
            if (PyList_Append(spaced, key) < 0) {
                Py_DECREF(spaced);
                return -1;
            }
        }
    }
    if (spaced == NULL) {
        return 1;
    }
    int rc = 1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(spaced); i++) {
        key = PyList_GET_ITEM(spaced, i);
        value = PyDict_GetItemWithError(fields, key);
        if (value == NULL) {
            rc = -1; /* present: was listed from fields, setdefault never removes */
            if (!PyErr_Occurred()) {
                PyErr_SetObject(PyExc_KeyError, key);
            }
            break;
        }
        PyObject *joined = PyUnicode_Replace(key, str_space, str_empty, -1);
        if (joined == NULL) {
            rc = -1;
            break;
        }
        PyObject *got = PyDict_SetDefault(fields, joined, value);
        Py_DECREF(joined);
        if (got == NULL) {
            rc = -1;
            break;
        }
    }
    Py_DECREF(spaced);
    return rc;
}

static int
is_handled_section(PyObject *key)
{
    return PyUnicode_CheckExact(key) &&
           (PyUnicode_Compare(key, str_system) == 0 || PyUnicode_Compare(key, str_event_data) == 0 ||
            PyUnicode_Compare(key, str_user_data) == 0 || PyUnicode_Compare(key, str_attrs) == 0);
}

/* normalise.flatten_windows_event for the common shapes; None for any other (the caller then
 * runs the Python function on the whole event). */
static PyObject *
flatten_windows_event(PyObject *module, PyObject *event)
{
    if (!PyDict_CheckExact(event)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(event, &pos, &key, &value)) {
        if (!is_handled_section(key)) {
            Py_RETURN_NONE; /* RenderingInfo, EventData_attributes, ...: other sections */
        }
    }
    PyObject *user_data = PyDict_GetItemWithError(event, str_user_data);
    if (user_data != NULL && user_data != Py_None) {
        Py_RETURN_NONE;
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *fields = PyDict_New();
    if (fields == NULL) {
        return NULL;
    }
    int rc = 1;
    PyObject *system = PyDict_GetItemWithError(event, str_system);
    if (system != NULL && PyDict_Check(system)) {
        rc = PyDict_CheckExact(system) ? flatten_system(system, fields) : 0;
    }
    else if (PyErr_Occurred()) {
        rc = -1;
    }
    if (rc == 1) {
        PyObject *data = PyDict_GetItemWithError(event, str_event_data);
        if (data != NULL && data != Py_None) {
            rc = flatten_event_data(data, fields);
        }
        else if (PyErr_Occurred()) {
            rc = -1;
        }
    }
    if (rc == 1) {
        rc = add_spaceless_names(fields);
    }
    if (rc == 1) {
        return fields;
    }
    Py_DECREF(fields);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* --------------------------------------------------------------------------- module */

static PyMethodDef methods[] = {
    {"lower_join", (PyCFunction)(void (*)(void))lower_join, METH_FASTCALL,
     "lower_join(fields, strings_only) -> str | None\n\n"
     "EventContext.string_text()/text() of a flat event; None for other value types."},
    {"lower_fields", (PyCFunction)(void (*)(void))lower_fields, METH_FASTCALL,
     "lower_fields(F, L, names) -> tuple\n\n"
     "The generated prelower block: L[name] for each name, filled as the Python code does."},
    {"flatten_windows_event", flatten_windows_event, METH_O,
     "flatten_windows_event(event) -> dict | None\n\n"
     "normalise.flatten_windows_event for the common shapes; None for any other."},
    {NULL, NULL, 0, NULL},
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

static int
exec_module(PyObject *module)
{
    if (intern(&str_lower, "lower") < 0) {
        return -1;
    }
    /* The byte table is str.lower() itself, asked once per Latin-1 character. */
    for (int c = 0; c < 256; c++) {
        PyObject *ch = PyUnicode_FromOrdinal(c);
        if (ch == NULL) {
            return -1;
        }
        PyObject *low = PyObject_CallMethodNoArgs(ch, str_lower);
        Py_DECREF(ch);
        if (low == NULL) {
            return -1;
        }
        int ok = PyUnicode_GET_LENGTH(low) == 1 && PyUnicode_READ_CHAR(low, 0) <= 255;
        if (ok) {
            latin1_lower[c] = (Py_UCS1)PyUnicode_READ_CHAR(low, 0);
        }
        Py_DECREF(low);
        if (!ok) {
            PyErr_SetString(PyExc_RuntimeError, "a Latin-1 character lowers beyond Latin-1");
            return -1;
        }
    }
    if (intern(&str_none, "none") < 0 ||
        intern(&str_separator, "\x1f") < 0 || intern(&str_system, "System") < 0 ||
        intern(&str_event_data, "EventData") < 0 || intern(&str_user_data, "UserData") < 0 ||
        intern(&str_attrs, "#attributes") < 0 || intern(&str_text, "#text") < 0 ||
        intern(&str_data, "Data") < 0 || intern(&str_event_id, "EventID") < 0 ||
        intern(&str_space, " ") < 0 || intern(&str_empty, "") < 0 ||
        intern(&str_attrs_suffix, ATTRS_SUFFIX) < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "vigil._speedups",
    .m_doc = "C kernels of the detection hot path; the Python code is the reference.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&module_def);
}
