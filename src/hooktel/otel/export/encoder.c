/* hooktel.otel.export.encoder: OTLP/protobuf bytes of finished spans, written directly.
 *
 * The compiled twin of hooktel/otel/export/encoder_py.py, which is the specification:
 * same grouping, same fields, same bytes, same attributes left out (see its
 * docstring). tests/native/test_encoder_native.py holds both to the stock
 * exporter's encoder, and runs under ASan/UBSan in scripts/asan.sh.
 *
 * The request is written into one growing buffer: no protobuf objects. A
 * length-delimited submessage reserves a guess of its length's size, writes
 * its body, then writes the length, moving the body when the guess was wrong
 * (Bun's encoder does the same). The GIL is held throughout: everything read
 * is a Python object, and Python code can run (a Mapping's items(), an
 * attribute key's __str__, a resource's __eq__), so every object read from a
 * container is held by a strong reference while it is used.
 */
#include "capi.h"
#include <string.h>

/* Wire types, and the SpanFlags bits of a context whose parent may be remote. */
enum { WT_VARINT = 0, WT_FIXED64 = 1, WT_LEN = 2, WT_FIXED32 = 5 };
#define FLAG_HAS_IS_REMOTE 0x100u
#define FLAG_IS_REMOTE 0x200u
#define MAX_DEPTH 30 /* arrays and maps nested deeper are left out: see _encoder_py.MAX_DEPTH */
#define MAX_MESSAGE 0x7fffffff  /* protobuf messages stay under 2 GiB */
#define N_KINDS 5
#define N_CODES 3

/* Interned names of the public API the encoder reads, created once per module. */
#define ENCODER_STRINGS(X)                                                     \
    X(s_dropped, "dropped")                                                    \
    X(s_trace_id, "trace_id")                                                  \
    X(s_span_id, "span_id")                                                    \
    X(s_is_remote, "is_remote")                                                \
    X(s_trace_state, "trace_state")                                            \
    X(s_items, "items")                                                        \
    X(s_timestamp, "timestamp")                                                \
    X(s_pub_name, "name")                                                      \
    X(s_pub_attributes, "attributes")                                          \
    X(s_dropped_attributes, "dropped_attributes")                              \
    X(s_pub_context, "context")                                                \
    X(s_description, "description")                                            \
    X(s_status_code, "status_code")                                            \
    X(s_value, "value")                                                        \
    X(s_version, "version")                                                    \
    X(s_schema_url, "schema_url")                                              \
    X(s_empty, "")

/* The fields read directly, for speed, where the public API has a property: given by
 * configure() from the Python seam (hooktel.otel._sdk), keyed by that property's name:
 * ReadableSpan's (readable_fields), and BoundedAttributes' plain dict (attributes_dict). */
#define READABLE_FIELDS(X)                                                     \
    X(f_name, "name")                                                          \
    X(f_context, "context")                                                    \
    X(f_parent, "parent")                                                      \
    X(f_kind, "kind")                                                          \
    X(f_resource, "resource")                                                  \
    X(f_attributes, "attributes")                                              \
    X(f_events, "events")                                                      \
    X(f_links, "links")                                                        \
    X(f_scope, "instrumentation_scope")                                        \
    X(f_status, "status")                                                      \
    X(f_start_time, "start_time")                                              \
    X(f_end_time, "end_time")
#define GIVEN_NAMES(X) READABLE_FIELDS(X) X(f_attributes_dict, "attributes_dict")

typedef struct {
    PyObject *SpanContext;       /* opentelemetry.trace.SpanContext: a tuple subclass */
    PyObject *BoundedAttributes; /* opentelemetry.attributes.BoundedAttributes */
    PyObject *BoundedList;       /* opentelemetry.sdk.util.BoundedList */
    PyObject *Sequence;          /* collections.abc */
    PyObject *Mapping;
    PyObject *kinds[N_KINDS];    /* SpanKind members ... */
    long kind_values[N_KINDS];   /* ... and their OTLP values (SpanKind.value + 1) */
    PyObject *codes[N_CODES];    /* StatusCode members ... */
    PyObject *code_values[N_CODES]; /* ... and their values (an enum's .value costs ~100 ns) */
#define DECLARE(name, text) PyObject *name;
    ENCODER_STRINGS(DECLARE)
    GIVEN_NAMES(DECLARE)
#undef DECLARE
} encoder_state;

static inline encoder_state *
get_state(PyObject *module)
{
    return (encoder_state *)PyModule_GetState(module);
}

/* ------------------------------------------------------------------ the buffer */

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    /* The last trace state seen and its text (both owned): the spans of one trace share
     * one TraceState object, and joining its items costs ~300 ns. */
    PyObject *trace_state, *trace_state_text;
} Buffer;

static int
buf_reserve(Buffer *b, Py_ssize_t extra)
{
    if (extra <= b->cap - b->len) {
        return 0;
    }
    if (extra > PY_SSIZE_T_MAX / 2 - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        cap *= 2;
    }
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int
varint_size(uint64_t value)
{
    int n = 1;
    while (value > 0x7f) {
        value >>= 7;
        n++;
    }
    return n;
}

/* Write a varint at `out` (room for 10 bytes); returns the bytes written. */
static inline int
varint_at(char *out, uint64_t value)
{
    int n = 0;
    while (value > 0x7f) {
        out[n++] = (char)((value & 0x7f) | 0x80);
        value >>= 7;
    }
    out[n++] = (char)value;
    return n;
}

static inline int
put_varint(Buffer *b, uint64_t value)
{
    if (b->cap - b->len < 10 && buf_reserve(b, 10) < 0) {
        return -1;
    }
    b->len += varint_at(b->data + b->len, value);
    return 0;
}

static int
put_tag(Buffer *b, uint32_t field, int wire_type)
{
    return put_varint(b, ((uint64_t)field << 3) | (uint64_t)wire_type);
}

static int
put_raw(Buffer *b, const char *src, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0) {
        return -1;
    }
    if (n > 0) {
        memcpy(b->data + b->len, src, (size_t)n);
    }
    b->len += n;
    return 0;
}

static int
put_le(Buffer *b, uint64_t value, int nbytes)
{
    if (buf_reserve(b, nbytes) < 0) {
        return -1;
    }
    for (int i = 0; i < nbytes; i++) {
        b->data[b->len++] = (char)(value >> (8 * i));
    }
    return 0;
}

static int
put_bytes_field(Buffer *b, uint32_t field, const char *src, Py_ssize_t n)
{
    if (put_tag(b, field, WT_LEN) < 0 || put_varint(b, (uint64_t)n) < 0) {
        return -1;
    }
    return put_raw(b, src, n);
}

/* A submessage: its tag, then room for a length of `guess` bytes; returns where the
 * length goes (the mark for end_message), or -1. */
static Py_ssize_t
begin_message(Buffer *b, uint32_t field, int guess)
{
    if (put_tag(b, field, WT_LEN) < 0 || buf_reserve(b, guess) < 0) {
        return -1;
    }
    Py_ssize_t mark = b->len;
    b->len += guess;
    return mark;
}

static int
end_message(Buffer *b, Py_ssize_t mark, int guess)
{
    Py_ssize_t body = mark + guess;
    Py_ssize_t body_len = b->len - body;
    if (body_len > MAX_MESSAGE) {
        PyErr_SetString(PyExc_ValueError, "OTLP message over 2 GiB");
        return -1;
    }
    int need = varint_size((uint64_t)body_len);
    if (need != guess) {
        if (need > guess && buf_reserve(b, need - guess) < 0) {
            return -1;
        }
        memmove(b->data + mark + need, b->data + body, (size_t)body_len);
        b->len += need - guess;
    }
    varint_at(b->data + mark, (uint64_t)body_len);
    return 0;
}

/* ------------------------------------------------------------------ scalar fields */

/* A string field; None, and "" unless `always`, are left out. */
static int
put_text(Buffer *b, uint32_t field, PyObject *value, int always)
{
    if (value == Py_None) {
        return 0;
    }
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "field %u: expected str, got %.100s", field,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(value, &n);
    if (utf8 == NULL) {
        return -1;
    }
    if (n == 0 && !always) {
        return 0;
    }
    return put_bytes_field(b, field, utf8, n);
}

/* A uint32/uint64/enum field from a Python int; None and 0 are left out. */
static int
put_uint(Buffer *b, uint32_t field, PyObject *value, uint64_t limit)
{
    if (value == Py_None) {
        return 0;
    }
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "field %u: expected int, got %.100s", field,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1; /* OverflowError: negative or over 64 bits */
    }
    if (v > limit) {
        PyErr_Format(PyExc_OverflowError, "field %u: %llu out of range", field, v);
        return -1;
    }
    if (v == 0) {
        return 0;
    }
    if (put_tag(b, field, WT_VARINT) < 0) {
        return -1;
    }
    return put_varint(b, (uint64_t)v);
}

static int
put_fixed64(Buffer *b, uint32_t field, PyObject *value)
{
    if (value == Py_None) {
        return 0;
    }
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "time: expected int, got %.100s", Py_TYPE(value)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    if (v == 0) {
        return 0;
    }
    if (put_tag(b, field, WT_FIXED64) < 0) {
        return -1;
    }
    return put_le(b, (uint64_t)v, 8);
}

/* An id (trace id: 16 bytes, span id: 8) as big-endian bytes, as int.to_bytes(n, "big"). */
static int
put_id(Buffer *b, uint32_t field, PyObject *id, Py_ssize_t nbytes)
{
    unsigned char raw[16];
    if (!PyLong_Check(id)) {
        PyErr_Format(PyExc_TypeError, "an id must be an int, not %.100s", Py_TYPE(id)->tp_name);
        return -1;
    }
    if (unsigned_bytes(id, raw, (int)nbytes) < 0) {
        return -1;
    }
    return put_bytes_field(b, field, (const char *)raw, nbytes);
}

/* ------------------------------------------------------------------ attributes */

static int put_key_value(encoder_state *st, Buffer *b, uint32_t field, PyObject *key,
                         PyObject *value, int depth);

static int
unencodable(const char *what)
{
    PyErr_Format(PyExc_ValueError, "no OTLP value for %s", what);
    return -1;
}

/* Each element of an array value, as an AnyValue field 1 of the ArrayValue. */
static int put_any_value(encoder_state *st, Buffer *b, uint32_t field, PyObject *value,
                         int depth);

static int
put_array_items(encoder_state *st, Buffer *b, PyObject *value, int depth)
{
    PyObject *iter = PyObject_GetIter(value);
    if (iter == NULL) {
        return -1;
    }
    PyObject *item;
    while ((item = PyIter_Next(iter)) != NULL) {
        int rc = put_any_value(st, b, 1, item, depth + 1);
        Py_DECREF(item);
        if (rc < 0) {
            Py_DECREF(iter);
            return -1;
        }
    }
    Py_DECREF(iter);
    return PyErr_Occurred() ? -1 : 0;
}

/* An iterator over `mapping.items()`, as the Python twin iterates a mapping. */
static PyObject *
items_iter(encoder_state *st, PyObject *mapping)
{
    PyObject *items = PyObject_CallMethodNoArgs(mapping, st->s_items);
    if (items == NULL) {
        return NULL;
    }
    PyObject *iter = PyObject_GetIter(items);
    Py_DECREF(items);
    return iter;
}

/* The next item of `items_iter`: 1 with `*pair` a new 2-item sequence, 0 at the end, -1 on
 * an error (a ValueError saying `not_a_pair` when an item is not a pair). */
static int
next_pair(PyObject *iter, const char *not_a_pair, PyObject **pair)
{
    PyObject *item = PyIter_Next(iter);
    if (item == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    *pair = PySequence_Fast(item, not_a_pair);
    Py_DECREF(item);
    if (*pair == NULL) {
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(*pair) != 2) {
        Py_CLEAR(*pair);
        PyErr_SetString(PyExc_ValueError, not_a_pair);
        return -1;
    }
    return 1;
}

/* Each (str(key), value) of a mapping, as a KeyValue field 1 of the KeyValueList. */
static int
put_kvlist_items(encoder_state *st, Buffer *b, PyObject *value, int depth)
{
    PyObject *iter = items_iter(st, value);
    if (iter == NULL) {
        return -1;
    }
    PyObject *pair;
    int more;
    while ((more = next_pair(iter, "a mapping's items() must give pairs", &pair)) > 0) {
        PyObject *key = PyObject_Str(PySequence_Fast_GET_ITEM(pair, 0));
        int rc = key == NULL ? -1
                             : put_key_value(st, b, 1, key, PySequence_Fast_GET_ITEM(pair, 1),
                                             depth + 1);
        Py_XDECREF(key);
        Py_DECREF(pair);
        if (rc < 0) {
            more = -1;
            break;
        }
    }
    Py_DECREF(iter);
    return more;
}

static int
put_any_value_body(encoder_state *st, Buffer *b, PyObject *value, int depth)
{
    if (value == Py_None) {
        return 0;
    }
    if (PyBool_Check(value)) {
        return put_tag(b, 2, WT_VARINT) < 0 ? -1 : put_varint(b, value == Py_True);
    }
    if (PyUnicode_Check(value)) {
        return put_text(b, 1, value, 1);
    }
    if (PyLong_Check(value)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            return unencodable("an int outside int64");
        }
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        return put_tag(b, 3, WT_VARINT) < 0 ? -1 : put_varint(b, (uint64_t)v);
    }
    if (PyFloat_Check(value)) {
        unsigned char raw[8];
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(value), (char *)raw, 1) < 0) {
            return -1;
        }
        return put_tag(b, 4, WT_FIXED64) < 0 ? -1 : put_raw(b, (const char *)raw, 8);
    }
    if (PyBytes_Check(value)) {
        return put_bytes_field(b, 7, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
    }
    if (depth >= MAX_DEPTH) {
        return unencodable("a value nested this deep");
    }
    int is_sequence = PyList_CheckExact(value) || PyTuple_CheckExact(value);
    if (!is_sequence && !PyDict_Check(value)) {
        is_sequence = PyObject_IsInstance(value, st->Sequence);
        if (is_sequence < 0) {
            return -1;
        }
    }
    if (is_sequence) {
        Py_ssize_t mark = begin_message(b, 5, 2);
        if (mark < 0 || put_array_items(st, b, value, depth) < 0) {
            return -1;
        }
        return end_message(b, mark, 2);
    }
    int is_mapping = PyDict_Check(value) ? 1 : PyObject_IsInstance(value, st->Mapping);
    if (is_mapping < 0) {
        return -1;
    }
    if (is_mapping) {
        Py_ssize_t mark = begin_message(b, 6, 2);
        if (mark < 0 || put_kvlist_items(st, b, value, depth) < 0) {
            return -1;
        }
        return end_message(b, mark, 2);
    }
    PyErr_Format(PyExc_ValueError, "no OTLP value for %.100s", Py_TYPE(value)->tp_name);
    return -1;
}

static int
put_any_value(encoder_state *st, Buffer *b, uint32_t field, PyObject *value, int depth)
{
    Py_ssize_t mark = begin_message(b, field, 1);
    if (mark < 0 || put_any_value_body(st, b, value, depth) < 0) {
        return -1;
    }
    return end_message(b, mark, 1);
}

/* A KeyValue whose value is a scalar (None, bool, str, int, float, bytes), written in one
 * go with its sizes known up front: most attributes. Returns 1, having written nothing,
 * when the value is not a scalar. */
static int
put_scalar_key_value(Buffer *b, uint32_t field, const char *key, Py_ssize_t key_len,
                     PyObject *value)
{
    uint64_t number = 0;      /* a varint value, or the payload's length */
    const char *payload = NULL;
    unsigned char raw[8];
    int tag = 0;              /* the AnyValue field's tag byte; 0: None, no field */
    Py_ssize_t any_len;
    if (value == Py_None) {
        any_len = 0;
    }
    else if (PyBool_Check(value)) {
        tag = (2 << 3) | WT_VARINT;
        number = value == Py_True;
        any_len = 2;
    }
    else if (PyUnicode_Check(value)) {
        Py_ssize_t n;
        if ((payload = PyUnicode_AsUTF8AndSize(value, &n)) == NULL) {
            return -1;
        }
        tag = (1 << 3) | WT_LEN;
        number = (uint64_t)n;
        any_len = 1 + varint_size(number) + n;
    }
    else if (PyLong_Check(value)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            return unencodable("an int outside int64");
        }
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        tag = (3 << 3) | WT_VARINT;
        number = (uint64_t)v;
        any_len = 1 + varint_size(number);
    }
    else if (PyFloat_Check(value)) {
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(value), (char *)raw, 1) < 0) {
            return -1;
        }
        tag = (4 << 3) | WT_FIXED64;
        any_len = 9;
    }
    else if (PyBytes_Check(value)) {
        payload = PyBytes_AS_STRING(value);
        tag = (7 << 3) | WT_LEN;
        number = (uint64_t)PyBytes_GET_SIZE(value);
        any_len = 1 + varint_size(number) + (Py_ssize_t)number;
    }
    else {
        return 1;
    }
    if (key_len > MAX_MESSAGE || any_len > MAX_MESSAGE - key_len - 20) {
        PyErr_SetString(PyExc_ValueError, "OTLP message over 2 GiB");
        return -1;
    }
    Py_ssize_t key_part = key_len ? 1 + varint_size((uint64_t)key_len) + key_len : 0;
    Py_ssize_t kv_len = key_part + 1 + varint_size((uint64_t)any_len) + any_len;
    if (buf_reserve(b, 20 + kv_len) < 0) {
        return -1;
    }
    char *out = b->data + b->len;
    out += varint_at(out, ((uint64_t)field << 3) | WT_LEN);
    out += varint_at(out, (uint64_t)kv_len);
    if (key_len) {
        *out++ = (1 << 3) | WT_LEN;
        out += varint_at(out, (uint64_t)key_len);
        memcpy(out, key, (size_t)key_len);
        out += key_len;
    }
    *out++ = (2 << 3) | WT_LEN;
    out += varint_at(out, (uint64_t)any_len);
    if (tag) {
        *out++ = (char)tag;
        if ((tag & 7) == WT_FIXED64) {
            memcpy(out, raw, 8);
            out += 8;
        }
        else {
            out += varint_at(out, number);
            if (payload != NULL) {
                memcpy(out, payload, (size_t)number);
                out += number;
            }
        }
    }
    b->len = out - b->data;
    return 0;
}

static int
put_key_value(encoder_state *st, Buffer *b, uint32_t field, PyObject *key, PyObject *value,
              int depth)
{
    if (!PyUnicode_Check(key)) {
        return unencodable("a key that is not a str");
    }
    Py_ssize_t key_len;
    const char *key_utf8 = PyUnicode_AsUTF8AndSize(key, &key_len);
    if (key_utf8 == NULL) {
        return -1;
    }
    int rc = put_scalar_key_value(b, field, key_utf8, key_len, value);
    if (rc <= 0) {
        return rc;
    }
    Py_ssize_t mark = begin_message(b, field, 1);
    if (mark < 0 || (key_len && put_bytes_field(b, 1, key_utf8, key_len) < 0)
        || put_any_value(st, b, 2, value, depth) < 0) {
        return -1;
    }
    return end_message(b, mark, 1);
}

/* One top-level attribute: on any error (an Exception) it is left out and counted. */
static int
put_attribute(encoder_state *st, Buffer *b, uint32_t field, PyObject *key, PyObject *value,
              Py_ssize_t *left_out)
{
    Py_ssize_t start = b->len;
    if (put_key_value(st, b, field, key, value, 0) == 0) {
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1; /* KeyboardInterrupt and the like go on */
    }
    PyErr_Clear();
    b->len = start;
    (*left_out)++;
    return 0;
}

static int
put_attribute_dict(encoder_state *st, Buffer *b, uint32_t field, PyObject *dict,
                   Py_ssize_t *left_out)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        /* Held while encoding: Python code run by the encoding may change the dict. */
        Py_INCREF(key);
        Py_INCREF(value);
        int rc = put_attribute(st, b, field, key, value, left_out);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* An attributes mapping (or None), each attribute as a KeyValue field `field`. */
static int
put_attributes(encoder_state *st, Buffer *b, uint32_t field, PyObject *attributes,
               Py_ssize_t *left_out)
{
    if (attributes == Py_None) {
        return 0;
    }
    if (PyDict_CheckExact(attributes)) {
        return put_attribute_dict(st, b, field, attributes, left_out);
    }
    if (Py_IS_TYPE(attributes, (PyTypeObject *)st->BoundedAttributes)) {
        /* Its items are those of its plain dict `_dict`, in the same order. */
        PyObject *inner = PyObject_GetAttr(attributes, st->f_attributes_dict);
        if (inner == NULL) {
            return -1;
        }
        int rc = PyDict_CheckExact(inner) ? put_attribute_dict(st, b, field, inner, left_out) : 1;
        Py_DECREF(inner);
        if (rc <= 0) {
            return rc;
        }
    }
    int truth = PyObject_IsTrue(attributes);
    if (truth <= 0) {
        return truth;
    }
    PyObject *iter = items_iter(st, attributes);
    if (iter == NULL) {
        return -1;
    }
    PyObject *pair;
    int more;
    while ((more = next_pair(iter, "attributes.items() must give pairs", &pair)) > 0) {
        int rc = put_attribute(st, b, field, PySequence_Fast_GET_ITEM(pair, 0),
                               PySequence_Fast_GET_ITEM(pair, 1), left_out);
        Py_DECREF(pair);
        if (rc < 0) {
            more = -1;
            break;
        }
    }
    Py_DECREF(iter);
    return more;
}

/* What ReadableSpan.dropped_* reports: `container.dropped` for the bounded type, else 0. */
static int
put_dropped(encoder_state *st, Buffer *b, uint32_t field, PyObject *container, PyObject *type)
{
    /* A real subtype check: both types are ABCs, whose isinstance() costs ~150 ns, and
     * neither has virtual subclasses. */
    if (!PyObject_TypeCheck(container, (PyTypeObject *)type)) {
        return 0;
    }
    PyObject *dropped = PyObject_GetAttr(container, st->s_dropped);
    if (dropped == NULL) {
        return -1;
    }
    int rc = put_uint(b, field, dropped, UINT32_MAX);
    Py_DECREF(dropped);
    return rc;
}

/* ------------------------------------------------------------------ span parts */

/* The parts of a SpanContext (borrowed from it when it is exactly one, else owned). */
typedef struct {
    PyObject *trace_id, *span_id, *is_remote, *trace_state;
    int owned;
} Context;

static int
context_parts(encoder_state *st, PyObject *ctx, Context *out)
{
    if (Py_IS_TYPE(ctx, (PyTypeObject *)st->SpanContext) && PyTuple_GET_SIZE(ctx) >= 5) {
        out->trace_id = PyTuple_GET_ITEM(ctx, 0);
        out->span_id = PyTuple_GET_ITEM(ctx, 1);
        out->is_remote = PyTuple_GET_ITEM(ctx, 2);
        out->trace_state = PyTuple_GET_ITEM(ctx, 4);
        out->owned = 0;
        return 0;
    }
    out->owned = 1;
    out->trace_id = PyObject_GetAttr(ctx, st->s_trace_id);
    out->span_id = out->trace_id ? PyObject_GetAttr(ctx, st->s_span_id) : NULL;
    out->is_remote = out->span_id ? PyObject_GetAttr(ctx, st->s_is_remote) : NULL;
    out->trace_state = out->is_remote ? PyObject_GetAttr(ctx, st->s_trace_state) : NULL;
    if (out->trace_state == NULL) {
        Py_XDECREF(out->trace_id);
        Py_XDECREF(out->span_id);
        Py_XDECREF(out->is_remote);
        return -1;
    }
    return 0;
}

static void
context_release(Context *c)
{
    if (c->owned) {
        Py_DECREF(c->trace_id);
        Py_DECREF(c->span_id);
        Py_DECREF(c->is_remote);
        Py_DECREF(c->trace_state);
    }
}

/* SpanFlags of a context that may be remote: `context and context.is_remote`. */
static int
flags_of(encoder_state *st, PyObject *ctx, uint32_t *flags)
{
    *flags = FLAG_HAS_IS_REMOTE;
    int truth = PyObject_IsTrue(ctx);
    if (truth <= 0) {
        return truth;
    }
    PyObject *remote;
    if (Py_IS_TYPE(ctx, (PyTypeObject *)st->SpanContext) && PyTuple_GET_SIZE(ctx) >= 5) {
        remote = Py_NewRef(PyTuple_GET_ITEM(ctx, 2));
    }
    else if ((remote = PyObject_GetAttr(ctx, st->s_is_remote)) == NULL) {
        return -1;
    }
    truth = PyObject_IsTrue(remote);
    Py_DECREF(remote);
    if (truth < 0) {
        return -1;
    }
    if (truth) {
        *flags |= FLAG_IS_REMOTE;
    }
    return 0;
}

/* ",".join(f"{key}={value}" for key, value in trace_state.items()), or None. */
static PyObject *
trace_state_text(encoder_state *st, PyObject *trace_state)
{
    if (trace_state == Py_None) {
        return Py_NewRef(Py_None);
    }
    Py_ssize_t size = PyObject_Length(trace_state);
    if (size <= 0) { /* most spans: an empty trace state joins to "", which is not sent */
        return size < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *items = PyObject_CallMethodNoArgs(trace_state, st->s_items);
    if (items == NULL) {
        return NULL;
    }
    PyObject *pairs = PySequence_List(items);
    Py_DECREF(items);
    if (pairs == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *key, *value;
        /* Held: the pair's items are borrowed until the piece is made. */
        PyObject *pair = Py_NewRef(PyList_GET_ITEM(pairs, i));
        PyObject *piece = NULL;
        if (PyArg_ParseTuple(pair, "OO;trace state items", &key, &value)) {
            piece = PyUnicode_FromFormat("%S=%S", key, value);
        }
        Py_DECREF(pair);
        /* PyList_SetItem steals the piece and releases the pair it replaces. */
        if (piece == NULL || PyList_SetItem(pairs, i, piece) < 0) {
            goto error;
        }
    }
    PyObject *sep = PyUnicode_FromString(",");
    if (sep == NULL) {
        goto error;
    }
    PyObject *text = PyUnicode_Join(sep, pairs);
    Py_DECREF(sep);
    Py_DECREF(pairs);
    return text;
error:
    Py_DECREF(pairs);
    return NULL;
}

static long
kind_value(encoder_state *st, PyObject *kind)
{
    for (int i = 0; i < N_KINDS; i++) {
        if (kind == st->kinds[i]) {
            return st->kind_values[i];
        }
    }
    PyErr_SetObject(PyExc_KeyError, kind);
    return -1;
}

static int
put_event(encoder_state *st, Buffer *b, PyObject *event, Py_ssize_t *left_out)
{
    int rc = -1;
    PyObject *timestamp = PyObject_GetAttr(event, st->s_timestamp);
    PyObject *name = timestamp ? PyObject_GetAttr(event, st->s_pub_name) : NULL;
    PyObject *attributes = name ? PyObject_GetAttr(event, st->s_pub_attributes) : NULL;
    PyObject *dropped = attributes ? PyObject_GetAttr(event, st->s_dropped_attributes) : NULL;
    if (dropped == NULL) {
        goto done;
    }
    Py_ssize_t mark = begin_message(b, 11, 2);
    if (mark < 0 || put_fixed64(b, 1, timestamp) < 0 || put_text(b, 2, name, 0) < 0
        || put_attributes(st, b, 3, attributes, left_out) < 0
        || put_uint(b, 4, dropped, UINT32_MAX) < 0) {
        goto done;
    }
    rc = end_message(b, mark, 2);
done:
    Py_XDECREF(timestamp);
    Py_XDECREF(name);
    Py_XDECREF(attributes);
    Py_XDECREF(dropped);
    return rc;
}

static int
put_link(encoder_state *st, Buffer *b, PyObject *link, Py_ssize_t *left_out)
{
    int rc = -1;
    Context c;
    uint32_t flags;
    PyObject *ctx = PyObject_GetAttr(link, st->s_pub_context);
    PyObject *attributes = ctx ? PyObject_GetAttr(link, st->s_pub_attributes) : NULL;
    PyObject *dropped = attributes ? PyObject_GetAttr(link, st->s_dropped_attributes) : NULL;
    if (dropped == NULL || context_parts(st, ctx, &c) < 0) {
        goto done;
    }
    Py_ssize_t mark = begin_message(b, 13, 1);
    /* The link's trace state is not sent, as by the stock encoder. */
    if (mark >= 0 && put_id(b, 1, c.trace_id, 16) == 0 && put_id(b, 2, c.span_id, 8) == 0
        && put_attributes(st, b, 4, attributes, left_out) == 0
        && put_uint(b, 5, dropped, UINT32_MAX) == 0 && flags_of(st, ctx, &flags) == 0
        && put_tag(b, 6, WT_FIXED32) == 0 && put_le(b, flags, 4) == 0) {
        rc = end_message(b, mark, 1);
    }
    context_release(&c);
done:
    Py_XDECREF(ctx);
    Py_XDECREF(attributes);
    Py_XDECREF(dropped);
    return rc;
}

/* Each event (or link) of a span, then its dropped count. */
static int
put_each(encoder_state *st, Buffer *b, PyObject *items, PyObject *bounded_type,
         uint32_t dropped_field, Py_ssize_t *left_out,
         int (*put)(encoder_state *, Buffer *, PyObject *, Py_ssize_t *))
{
    PyObject *iter = PyObject_GetIter(items);
    if (iter == NULL) {
        return -1;
    }
    PyObject *item;
    while ((item = PyIter_Next(iter)) != NULL) {
        int rc = put(st, b, item, left_out);
        Py_DECREF(item);
        if (rc < 0) {
            Py_DECREF(iter);
            return -1;
        }
    }
    Py_DECREF(iter);
    if (PyErr_Occurred()) {
        return -1;
    }
    return put_dropped(st, b, dropped_field, items, bounded_type);
}

static int
put_status(encoder_state *st, Buffer *b, PyObject *status)
{
    if (status == Py_None) {
        return 0;
    }
    int rc = -1;
    PyObject *description = PyObject_GetAttr(status, st->s_description);
    PyObject *code = description ? PyObject_GetAttr(status, st->s_status_code) : NULL;
    PyObject *value = NULL;
    for (int i = 0; code != NULL && value == NULL && i < N_CODES; i++) {
        if (code == st->codes[i]) {
            value = Py_NewRef(st->code_values[i]);
        }
    }
    if (code != NULL && value == NULL) {
        value = PyObject_GetAttr(code, st->s_value);
    }
    if (value != NULL) {
        Py_ssize_t mark = begin_message(b, 15, 1);
        if (mark >= 0 && put_text(b, 2, description, 0) == 0
            && put_uint(b, 3, value, UINT64_MAX) == 0) {
            rc = end_message(b, mark, 1);
        }
    }
    Py_XDECREF(description);
    Py_XDECREF(code);
    Py_XDECREF(value);
    return rc;
}

/* The fields of a span read from its ReadableSpan fields, in one array for cleanup. */
enum { F_CONTEXT, F_PARENT, F_NAME, F_KIND, F_START, F_END, F_ATTRIBUTES, F_EVENTS, F_LINKS,
       F_STATUS, N_FIELDS };

static int
put_span_fields(encoder_state *st, Buffer *b, PyObject **f, Py_ssize_t *left_out)
{
    Context c;
    if (context_parts(st, f[F_CONTEXT], &c) < 0) {
        return -1;
    }
    PyObject *trace_state = NULL;
    int rc = -1;
    if (put_id(b, 1, c.trace_id, 16) < 0 || put_id(b, 2, c.span_id, 8) < 0) {
        goto done;
    }
    if (c.trace_state == b->trace_state) {
        trace_state = Py_NewRef(b->trace_state_text);
    }
    else if ((trace_state = trace_state_text(st, c.trace_state)) != NULL) {
        Py_XSETREF(b->trace_state, Py_NewRef(c.trace_state));
        Py_XSETREF(b->trace_state_text, Py_NewRef(trace_state));
    }
    if (trace_state == NULL || put_text(b, 3, trace_state, 0) < 0) {
        goto done;
    }
    int has_parent = PyObject_IsTrue(f[F_PARENT]);
    if (has_parent < 0) {
        goto done;
    }
    if (has_parent) {
        Context p;
        if (context_parts(st, f[F_PARENT], &p) < 0) {
            goto done;
        }
        int prc = put_id(b, 4, p.span_id, 8);
        context_release(&p);
        if (prc < 0) {
            goto done;
        }
    }
    uint32_t flags;
    if (put_text(b, 5, f[F_NAME], 0) < 0) {
        goto done;
    }
    long kind = kind_value(st, f[F_KIND]);
    if (kind < 0 || put_tag(b, 6, WT_VARINT) < 0
        || put_varint(b, (uint64_t)kind) < 0 || put_fixed64(b, 7, f[F_START]) < 0
        || put_fixed64(b, 8, f[F_END]) < 0
        || put_attributes(st, b, 9, f[F_ATTRIBUTES], left_out) < 0
        || put_dropped(st, b, 10, f[F_ATTRIBUTES], st->BoundedAttributes) < 0
        || put_each(st, b, f[F_EVENTS], st->BoundedList, 12, left_out, put_event) < 0
        || put_each(st, b, f[F_LINKS], st->BoundedList, 14, left_out, put_link) < 0
        || put_status(st, b, f[F_STATUS]) < 0 || flags_of(st, f[F_PARENT], &flags) < 0
        || put_tag(b, 16, WT_FIXED32) < 0 || put_le(b, flags, 4) < 0) {
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(trace_state);
    context_release(&c);
    return rc;
}

static int
put_span(encoder_state *st, Buffer *b, PyObject *span, Py_ssize_t *left_out)
{
    PyObject *names[N_FIELDS] = {
        [F_CONTEXT] = st->f_context, [F_PARENT] = st->f_parent, [F_NAME] = st->f_name,
        [F_KIND] = st->f_kind, [F_START] = st->f_start_time, [F_END] = st->f_end_time,
        [F_ATTRIBUTES] = st->f_attributes, [F_EVENTS] = st->f_events, [F_LINKS] = st->f_links,
        [F_STATUS] = st->f_status,
    };
    PyObject *f[N_FIELDS] = {NULL};
    int rc = -1;
    for (int i = 0; i < N_FIELDS; i++) {
        if ((f[i] = PyObject_GetAttr(span, names[i])) == NULL) {
            goto done;
        }
    }
    Py_ssize_t mark = begin_message(b, 2, 2);
    if (mark >= 0 && put_span_fields(st, b, f, left_out) == 0) {
        rc = end_message(b, mark, 2);
    }
done:
    for (int i = 0; i < N_FIELDS; i++) {
        Py_XDECREF(f[i]);
    }
    return rc;
}

/* ------------------------------------------------------------------ grouping */

/* A resource or scope group: its key (owned), its parent resource group (for a scope
 * group), and its spans as a chain of indices (first, last; `next` per span). */
typedef struct {
    PyObject *key;
    Py_ssize_t resource;
    Py_ssize_t first, last;
} Group;

typedef struct {
    Group *items;
    Py_ssize_t len, cap;
} Groups;

static void
groups_clear(Groups *g)
{
    for (Py_ssize_t i = 0; i < g->len; i++) {
        Py_DECREF(g->items[i].key);
    }
    PyMem_Free(g->items);
    g->items = NULL;
    g->len = g->cap = 0;
}

/* The index of the group of `key` among those of resource `resource` (-1: any):
 * `last` if it is the same object, else the first equal one, else a new one. */
static Py_ssize_t
group_of(Groups *g, PyObject *key, Py_ssize_t resource, Py_ssize_t last)
{
    if (last >= 0 && g->items[last].key == key) {
        return last;
    }
    for (Py_ssize_t i = 0; i < g->len; i++) {
        if (g->items[i].resource != resource) {
            continue;
        }
        int eq = PyObject_RichCompareBool(g->items[i].key, key, Py_EQ);
        if (eq < 0) {
            return -1;
        }
        if (eq) {
            return i;
        }
    }
    if (g->len == g->cap) {
        Py_ssize_t cap = g->cap ? g->cap * 2 : 4;
        if ((size_t)cap > PY_SSIZE_T_MAX / sizeof(Group)) {
            PyErr_NoMemory();
            return -1;
        }
        Group *items = PyMem_Realloc(g->items, (size_t)cap * sizeof(Group));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        g->items = items;
        g->cap = cap;
    }
    g->items[g->len] = (Group){Py_NewRef(key), resource, -1, -1};
    return g->len++;
}

/* Sort the spans into resource groups, then scope groups (chains through `next`). */
static int
group_spans(encoder_state *st, PyObject *const *spans, Py_ssize_t n, Groups *resources,
            Groups *scopes, Py_ssize_t *next)
{
    Py_ssize_t last_resource = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *resource = PyObject_GetAttr(spans[i], st->f_resource);
        if (resource == NULL) {
            return -1;
        }
        Py_ssize_t r = group_of(resources, resource, -1, last_resource);
        Py_DECREF(resource);
        if (r < 0) {
            return -1;
        }
        last_resource = r;
        PyObject *scope = PyObject_GetAttr(spans[i], st->f_scope);
        if (scope == NULL) {
            return -1;
        }
        int truth = PyObject_IsTrue(scope);
        if (truth < 0) {
            Py_DECREF(scope);
            return -1;
        }
        if (truth == 0) {
            Py_SETREF(scope, Py_NewRef(Py_None)); /* `scope or None` */
        }
        /* `last` of a resource group: the scope group its latest span went to. */
        Py_ssize_t s = group_of(scopes, scope, r, resources->items[r].last);
        Py_DECREF(scope);
        if (s < 0) {
            return -1;
        }
        resources->items[r].last = s;
        Group *group = &scopes->items[s];
        next[i] = -1;
        if (group->first < 0) {
            group->first = i;
        }
        else {
            next[group->last] = i;
        }
        group->last = i;
    }
    return 0;
}

/* ------------------------------------------------------------------ the request */

static int
put_scope_spans(encoder_state *st, Buffer *b, PyObject *const *spans, Group *group,
                const Py_ssize_t *next, Py_ssize_t *left_out)
{
    PyObject *scope = group->key;
    Py_ssize_t outer = begin_message(b, 2, 3);
    Py_ssize_t mark = outer < 0 ? -1 : begin_message(b, 1, 1);
    if (mark < 0) {
        return -1;
    }
    PyObject *schema_url = Py_NewRef(Py_None);
    if (scope != Py_None) {
        PyObject *name = PyObject_GetAttr(scope, st->s_pub_name);
        PyObject *version = name ? PyObject_GetAttr(scope, st->s_version) : NULL;
        PyObject *attributes = version ? PyObject_GetAttr(scope, st->s_pub_attributes) : NULL;
        Py_SETREF(schema_url, attributes ? PyObject_GetAttr(scope, st->s_schema_url) : NULL);
        int rc = schema_url == NULL || put_text(b, 1, name, 0) < 0 || put_text(b, 2, version, 0) < 0
                 || put_attributes(st, b, 3, attributes, left_out) < 0;
        Py_XDECREF(name);
        Py_XDECREF(version);
        Py_XDECREF(attributes);
        if (rc) {
            Py_XDECREF(schema_url);
            return -1;
        }
    }
    int rc = end_message(b, mark, 1);
    for (Py_ssize_t i = group->first; rc == 0 && i >= 0; i = next[i]) {
        rc = put_span(st, b, spans[i], left_out);
    }
    if (rc == 0 && put_text(b, 3, schema_url, 0) == 0) {
        rc = end_message(b, outer, 3);
    }
    else {
        rc = -1;
    }
    Py_DECREF(schema_url);
    return rc;
}

static int
put_resource_spans(encoder_state *st, Buffer *b, PyObject *const *spans, Py_ssize_t r,
                   Groups *resources, Groups *scopes, const Py_ssize_t *next,
                   Py_ssize_t *left_out)
{
    PyObject *resource = resources->items[r].key;
    PyObject *attributes = PyObject_GetAttr(resource, st->s_pub_attributes);
    if (attributes == NULL) {
        return -1;
    }
    Py_ssize_t outer = begin_message(b, 1, 3);
    Py_ssize_t mark = outer < 0 ? -1 : begin_message(b, 1, 2);
    int rc = mark < 0 || put_attributes(st, b, 1, attributes, left_out) < 0
             || end_message(b, mark, 2) < 0;
    Py_DECREF(attributes);
    if (rc) {
        return -1;
    }
    for (Py_ssize_t s = 0; s < scopes->len; s++) {
        if (scopes->items[s].resource == r
            && put_scope_spans(st, b, spans, &scopes->items[s], next, left_out) < 0) {
            return -1;
        }
    }
    PyObject *schema_url = PyObject_GetAttr(resource, st->s_schema_url);
    if (schema_url == NULL) {
        return -1;
    }
    rc = put_text(b, 3, schema_url, 0);
    Py_DECREF(schema_url);
    return rc < 0 ? -1 : end_message(b, outer, 3);
}

PyDoc_STRVAR(encode_spans_doc,
"encode_spans(spans) -> (bytes, int)\n\n"
"The ExportTraceServiceRequest bytes for `spans` (finished SDK spans), and how many\n"
"attribute values were left out (twin of hooktel.otel.export.encoder_py.encode_spans).");

static PyObject *
encode_spans(PyObject *module, PyObject *arg)
{
    encoder_state *st = get_state(module);
    if (st->f_attributes_dict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "encode_spans(): configure() first");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(arg, "encode_spans() takes a sequence of spans");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *const *spans = PySequence_Fast_ITEMS(seq);
    /* The spans stay alive: `seq` holds them. A tuple cannot change, nor can a list that
     * PySequence_Fast made; the caller's own list is copied first (below). */
    PyObject *result = NULL;
    Buffer b = {NULL, 0, 0, NULL, NULL};
    Groups resources = {NULL, 0, 0}, scopes = {NULL, 0, 0};
    Py_ssize_t left_out = 0;
    Py_ssize_t *next = NULL;
    PyObject *held = NULL;
    if (seq == arg && PyList_Check(seq)) {
        /* A copy: Python code run while encoding (an __eq__, an items()) may change it. */
        held = PyList_GetSlice(seq, 0, n);
        if (held == NULL) {
            goto done;
        }
        spans = PySequence_Fast_ITEMS(held);
    }
    if ((size_t)n > PY_SSIZE_T_MAX / sizeof(Py_ssize_t) / 2
        || buf_reserve(&b, n < PY_SSIZE_T_MAX / 512 ? 64 + n * 384 : 64) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    next = PyMem_Malloc(n ? (size_t)n * sizeof(Py_ssize_t) : 1);
    if (next == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (group_spans(st, spans, n, &resources, &scopes, next) < 0) {
        goto done;
    }
    for (Py_ssize_t r = 0; r < resources.len; r++) {
        if (put_resource_spans(st, &b, spans, r, &resources, &scopes, next, &left_out) < 0) {
            goto done;
        }
    }
    result = Py_BuildValue("(y#n)", b.data ? b.data : "", b.len, left_out);
done:
    groups_clear(&resources);
    groups_clear(&scopes);
    PyMem_Free(next);
    PyMem_Free(b.data);
    Py_XDECREF(b.trace_state);
    Py_XDECREF(b.trace_state_text);
    Py_XDECREF(held);
    Py_DECREF(seq);
    return result;
}

/* An interned str: the value of `key` in `mapping`, for configure(). */
static PyObject *
given_name(PyObject *mapping, const char *key)
{
    PyObject *name = PyMapping_GetItemString(mapping, key);
    if (name != NULL && !PyUnicode_CheckExact(name)) {
        PyErr_Format(PyExc_TypeError, "configure(): the field of %s must be a str", key);
        Py_CLEAR(name);
    }
    if (name != NULL) {
        PyUnicode_InternInPlace(&name);
    }
    return name;
}

PyDoc_STRVAR(configure_doc,
"configure(*, readable_fields, attributes_dict)\n\n"
"The fields to read directly, once, from the Python seam (hooktel._core.twin):\n"
"`readable_fields` maps ReadableSpan's property names to the fields behind them,\n"
"`attributes_dict` is BoundedAttributes' plain dict of items.");

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *options)
{
    static char *keywords[] = {"readable_fields", "attributes_dict", NULL};
    encoder_state *st = get_state(module);
    PyObject *fields, *attributes_dict;
    if (!PyArg_ParseTupleAndKeywords(args, options, "$OU:configure", keywords, &fields,
                                     &attributes_dict)) {
        return NULL;
    }
    encoder_state given = {NULL};
#define GIVE(name, key)                                                        \
    if ((given.name = given_name(fields, key)) == NULL) {                      \
        goto error;                                                            \
    }
    READABLE_FIELDS(GIVE)
#undef GIVE
    given.f_attributes_dict = Py_NewRef(attributes_dict);
    PyUnicode_InternInPlace(&given.f_attributes_dict);
#define SET(name, key) Py_XSETREF(st->name, given.name);
    GIVEN_NAMES(SET)
#undef SET
    Py_RETURN_NONE;
error:
#define CLEAR(name, key) Py_XDECREF(given.name);
    GIVEN_NAMES(CLEAR)
#undef CLEAR
    return NULL;
}

/* ------------------------------------------------------------------ the module */

static PyMethodDef encoder_methods[] = {
    {"encode_spans", (PyCFunction)encode_spans, METH_O, encode_spans_doc},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     configure_doc},
    {NULL, NULL, 0, NULL},
};

static PyObject *
import_attr(const char *module, const char *name)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL) {
        return NULL;
    }
    PyObject *attr = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return attr;
}

static int
encoder_exec(PyObject *module)
{
    encoder_state *st = get_state(module);
    static const char *const kind_names[N_KINDS] = {"INTERNAL", "SERVER", "CLIENT",
                                                    "PRODUCER", "CONSUMER"};
    if ((st->SpanContext = import_attr("opentelemetry.trace", "SpanContext")) == NULL
        || (st->BoundedAttributes = import_attr("opentelemetry.attributes", "BoundedAttributes"))
               == NULL
        || (st->BoundedList = import_attr("opentelemetry.sdk.util", "BoundedList")) == NULL
        || (st->Sequence = import_attr("collections.abc", "Sequence")) == NULL
        || (st->Mapping = import_attr("collections.abc", "Mapping")) == NULL) {
        return -1;
    }
    if (!PyType_Check(st->SpanContext) || !PyType_IsSubtype((PyTypeObject *)st->SpanContext,
                                                            &PyTuple_Type)
        || !PyType_Check(st->BoundedAttributes)) {
        PyErr_SetString(PyExc_ImportError, "hooktel.otel.export.encoder: unexpected OpenTelemetry types");
        return -1;
    }
    PyObject *span_kind = import_attr("opentelemetry.trace", "SpanKind");
    if (span_kind == NULL) {
        return -1;
    }
    for (int i = 0; i < N_KINDS; i++) {
        PyObject *value = NULL;
        st->kinds[i] = PyObject_GetAttrString(span_kind, kind_names[i]);
        if (st->kinds[i] != NULL) {
            value = PyObject_GetAttrString(st->kinds[i], "value");
        }
        st->kind_values[i] = value ? PyLong_AsLong(value) + 1 : -1;
        Py_XDECREF(value);
        if (st->kind_values[i] <= 0) {
            Py_DECREF(span_kind);
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ImportError, "hooktel.otel.export.encoder: unexpected SpanKind");
            }
            return -1;
        }
    }
    Py_DECREF(span_kind);
    static const char *const code_names[N_CODES] = {"UNSET", "OK", "ERROR"};
    PyObject *status_code = import_attr("opentelemetry.trace", "StatusCode");
    if (status_code == NULL) {
        return -1;
    }
    for (int i = 0; i < N_CODES; i++) {
        st->codes[i] = PyObject_GetAttrString(status_code, code_names[i]);
        if (st->codes[i] == NULL
            || (st->code_values[i] = PyObject_GetAttrString(st->codes[i], "value")) == NULL) {
            Py_DECREF(status_code);
            return -1;
        }
    }
    Py_DECREF(status_code);
#define MAKE_STRING(name, text)                                                \
    if ((st->name = PyUnicode_InternFromString(text)) == NULL) {               \
        return -1;                                                             \
    }
    ENCODER_STRINGS(MAKE_STRING)
#undef MAKE_STRING
    return 0;
}

/* Every object the state holds, for traverse and clear. */
#define STATE_OBJECTS(X)                                                       \
    X(SpanContext) X(BoundedAttributes) X(BoundedList) X(Sequence) X(Mapping)  \
    X(kinds[0]) X(kinds[1]) X(kinds[2]) X(kinds[3]) X(kinds[4])                \
    X(codes[0]) X(codes[1]) X(codes[2])                                        \
    X(code_values[0]) X(code_values[1]) X(code_values[2])

static int
encoder_traverse(PyObject *module, visitproc visit, void *arg)
{
    encoder_state *st = get_state(module);
    if (st == NULL) {
        return 0;
    }
#define VISIT(field) Py_VISIT(st->field);
    STATE_OBJECTS(VISIT)
#undef VISIT
    return 0;
}

static int
encoder_clear(PyObject *module)
{
    encoder_state *st = get_state(module);
    if (st == NULL) {
        return 0;
    }
#define CLEAR(field) Py_CLEAR(st->field);
    STATE_OBJECTS(CLEAR)
#undef CLEAR
#define CLEAR_STRING(name, text) Py_CLEAR(st->name);
    ENCODER_STRINGS(CLEAR_STRING)
    GIVEN_NAMES(CLEAR_STRING)
#undef CLEAR_STRING
    return 0;
}

static void
encoder_free(void *module)
{
    encoder_clear((PyObject *)module);
}

static PyModuleDef_Slot encoder_slots[] = {
    {Py_mod_exec, encoder_exec},
    {0, NULL},
};

static struct PyModuleDef encoder_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hooktel.otel.export.encoder",
    .m_doc = "OTLP/protobuf bytes of finished spans, written directly (twin of _encoder_py).",
    .m_size = sizeof(encoder_state),
    .m_methods = encoder_methods,
    .m_slots = encoder_slots,
    .m_traverse = encoder_traverse,
    .m_clear = encoder_clear,
    .m_free = encoder_free,
};

PyMODINIT_FUNC
PyInit_encoder(void)
{
    return PyModuleDef_Init(&encoder_module);
}
