/* The start attributes of a request: the twin of _http.begin_http and its helpers
 * (_scan_headers, _other_form, _split_host, _authority, _add_parent, decimal),
 * of _traceparent.parse_traceparent and of _headers.HeaderCapture.collect.
 */
#include "core.h"

/* ---------------------------------------------------------------- small pieces */

/* A new reference to `value` as text: a str as it is, bytes decoded as latin-1. */
PyObject *
latin1_text(PyObject *value)
{
    if (PyBytes_Check(value)) {
        return PyUnicode_DecodeLatin1(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), NULL);
    }
    return Py_NewRef(value);
}

/* A new reference to `text` cut to `limit` characters (twin of _headers.cap). */
static PyObject *
cap(PyObject *text, Py_ssize_t limit)
{
    if (PyUnicode_GET_LENGTH(text) <= limit) {
        return Py_NewRef(text);
    }
    return PyUnicode_Substring(text, 0, limit);
}

/* Twin of _http.decimal: 1 and *value when `text` is ASCII digits only; 0 when it is
 * not; -1 on error. Values past a C long are out of every range the callers accept,
 * so they count as "not a number we take" (LONG_MAX). */
int
decimal_value(PyObject *text, long *value)
{
    if (!PyUnicode_Check(text)) {
        return 0;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    if (length == 0) {
        return 0;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    long result = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < '0' || c > '9') {
            return 0;
        }
        result = result > (LONG_MAX - 9) / 10 ? LONG_MAX : result * 10 + (long)(c - '0');
    }
    *value = result;
    return 1;
}

/* The int `text` spells in decimal, as Python's int() would; NULL with no error when
 * it is not ASCII digits only. */
static PyObject *
decimal_object(PyObject *text)
{
    long value;
    int found = decimal_value(text, &value);
    if (found <= 0) {
        return NULL;
    }
    if (value != LONG_MAX) {
        return PyLong_FromLong(value);
    }
    return PyLong_FromUnicodeObject(text, 10); /* a huge Content-Length, exactly */
}

/* The ASCII character classes of RFC 3986 the parsers need, as bits of one table. */
enum {
    C_ALNUM = 1,   /* A-Z a-z 0-9 */
    C_REGNAME = 2, /* _http._REG_NAME: alnum and -._~!$&'()*+,;=% */
    C_IPV6 = 4,    /* _http._IPV6_LITERAL: alnum and -._~:% */
    C_SCHEME = 8,  /* _http._SCHEME after its first letter: alnum and +-. */
    C_OWS = 16,    /* space and tab */
};

/* Runs of consecutive characters of one class, for the table's initialiser. */
#define RUN2(c, bits) [(c)] = (bits), [(c) + 1] = (bits)
#define RUN4(c, bits) RUN2(c, bits), RUN2((c) + 2, bits)
#define RUN8(c, bits) RUN4(c, bits), RUN4((c) + 4, bits)
#define RUN16(c, bits) RUN8(c, bits), RUN8((c) + 8, bits)
#define RUN26(c, bits) RUN16(c, bits), RUN8((c) + 16, bits), RUN2((c) + 24, bits)
#define ALNUM (C_ALNUM | C_REGNAME | C_IPV6 | C_SCHEME)

static const unsigned char CHAR_CLASS[128] = {
    RUN8('0', ALNUM), RUN2('8', ALNUM), RUN26('A', ALNUM), RUN26('a', ALNUM),
    ['-'] = C_REGNAME | C_IPV6 | C_SCHEME, ['.'] = C_REGNAME | C_IPV6 | C_SCHEME,
    ['_'] = C_REGNAME | C_IPV6, ['~'] = C_REGNAME | C_IPV6, ['%'] = C_REGNAME | C_IPV6,
    ['!'] = C_REGNAME, ['$'] = C_REGNAME, ['&'] = C_REGNAME, ['\''] = C_REGNAME,
    ['('] = C_REGNAME, [')'] = C_REGNAME, ['*'] = C_REGNAME, [','] = C_REGNAME,
    [';'] = C_REGNAME, ['='] = C_REGNAME, ['+'] = C_REGNAME | C_SCHEME,
    [':'] = C_IPV6, [' '] = C_OWS, ['\t'] = C_OWS,
};

#undef RUN2
#undef RUN4
#undef RUN8
#undef RUN16
#undef RUN26
#undef ALNUM

static int
in_class(Py_UCS4 c, unsigned char bits)
{
    return c < 128 && (CHAR_CLASS[c] & bits) != 0;
}

/* Every character of text[start:end] is in the class `bits`, and there is one. */
static int
all_chars(PyObject *text, Py_ssize_t start, Py_ssize_t end, unsigned char bits)
{
    if (end <= start) {
        return 0;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = start; i < end; i++) {
        if (!in_class(PyUnicode_READ(kind, data, i), bits)) {
            return 0;
        }
    }
    return 1;
}

/* _SCHEME: [A-Za-z][A-Za-z0-9+\-.]* over text[0:end]. */
static int
is_scheme(PyObject *text, Py_ssize_t end)
{
    if (end <= 0) {
        return 0;
    }
    Py_UCS4 first = PyUnicode_READ_CHAR(text, 0);
    if (!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z'))) {
        return 0;
    }
    return end == 1 || all_chars(text, 1, end, C_SCHEME);
}

static int
starts_with_char(PyObject *text, Py_UCS4 c)
{
    return PyUnicode_GET_LENGTH(text) > 0 && PyUnicode_READ_CHAR(text, 0) == c;
}

/* ---------------------------------------------------------------- traceparent */

static int
hex_run(int kind, const void *data, Py_ssize_t start, Py_ssize_t count)
{
    for (Py_ssize_t i = start; i < start + count; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static int
all_zero(int kind, const void *data, Py_ssize_t start, Py_ssize_t count)
{
    for (Py_ssize_t i = start; i < start + count; i++) {
        if (PyUnicode_READ(kind, data, i) != '0') {
            return 0;
        }
    }
    return 1;
}

/* Twin of _traceparent.parse_traceparent: 1 and the three fields when valid, 0 when
 * not, -1 on error. */
static int
parse_traceparent(PyObject *raw, PyObject **trace_id, PyObject **span_id, long *flags)
{
    Py_ssize_t start = 0, end = PyUnicode_GET_LENGTH(raw);
    int kind = PyUnicode_KIND(raw);
    const void *data = PyUnicode_DATA(raw);
    while (start < end && in_class(PyUnicode_READ(kind, data, start), C_OWS)) {
        start++;
    }
    while (end > start && in_class(PyUnicode_READ(kind, data, end - 1), C_OWS)) {
        end--;
    }
    Py_ssize_t length = end - start;
    if (length < 55 || !hex_run(kind, data, start, 2) ||
        PyUnicode_READ(kind, data, start + 2) != '-' || !hex_run(kind, data, start + 3, 32) ||
        PyUnicode_READ(kind, data, start + 35) != '-' || !hex_run(kind, data, start + 36, 16) ||
        PyUnicode_READ(kind, data, start + 52) != '-' || !hex_run(kind, data, start + 53, 2)) {
        return 0;
    }
    int version_ff = PyUnicode_READ(kind, data, start) == 'f' &&
                     PyUnicode_READ(kind, data, start + 1) == 'f';
    int version_00 = PyUnicode_READ(kind, data, start) == '0' &&
                     PyUnicode_READ(kind, data, start + 1) == '0';
    if (version_ff || all_zero(kind, data, start + 3, 32) || all_zero(kind, data, start + 36, 16)) {
        return 0;
    }
    if (length != 55 && (version_00 || PyUnicode_READ(kind, data, start + 55) != '-')) {
        return 0;
    }
    Py_UCS4 high = PyUnicode_READ(kind, data, start + 53);
    Py_UCS4 low = PyUnicode_READ(kind, data, start + 54);
    *flags = (long)((high <= '9' ? high - '0' : high - 'a' + 10) * 16 +
                    (low <= '9' ? low - '0' : low - 'a' + 10));
    *trace_id = PyUnicode_Substring(raw, start + 3, start + 35);
    if (*trace_id == NULL) {
        return -1;
    }
    *span_id = PyUnicode_Substring(raw, start + 36, start + 52);
    if (*span_id == NULL) {
        Py_CLEAR(*trace_id);
        return -1;
    }
    return 1;
}

PyObject *
core_parse_traceparent(PyObject *module, PyObject *value)
{
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "parse_traceparent() takes a str");
        return NULL;
    }
    PyObject *trace_id, *span_id;
    long flags;
    int found = parse_traceparent(value, &trace_id, &span_id, &flags);
    if (found <= 0) {
        return found < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *result = Py_BuildValue("(NNl)", trace_id, span_id, flags);
    return result;
}

/* ---------------------------------------------------------------- authority */

/* Twin of _http._split_host: a new (address, port) tuple, or Py_None (a new
 * reference) when `host` is not a valid host[:port]; NULL on error. */
static PyObject *
split_host(CoreState *state, PyObject *host, PyObject *scheme)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(host);
    Py_ssize_t address_start, address_end, port_start;
    int valid;
    if (starts_with_char(host, '[')) {
        Py_ssize_t close = PyUnicode_FindChar(host, ']', 0, length, 1);
        if (close == -2) {
            return NULL;
        }
        if (close < 0) {
            Py_RETURN_NONE;
        }
        address_start = 1;
        address_end = close;
        if (close + 1 < length && PyUnicode_READ_CHAR(host, close + 1) != ':') {
            Py_RETURN_NONE;
        }
        port_start = close + 2;
        valid = all_chars(host, address_start, address_end, C_IPV6) &&
                PyUnicode_FindChar(host, ':', address_start, address_end, 1) >= 0;
    }
    else {
        Py_ssize_t colon = PyUnicode_FindChar(host, ':', 0, length, 1);
        if (colon == -2) {
            return NULL;
        }
        address_start = 0;
        address_end = colon < 0 ? length : colon;
        port_start = colon < 0 ? length : colon + 1;
        valid = all_chars(host, address_start, address_end, C_REGNAME);
    }
    if (!valid || address_end - address_start > state->max_host) {
        Py_RETURN_NONE;
    }
    long port;
    if (port_start >= length) {
        if (PyUnicode_Compare(scheme, state->s_http) == 0 ||
            PyUnicode_Compare(scheme, state->s_ws) == 0) {
            port = 80;
        }
        else if (PyUnicode_Compare(scheme, state->s_https) == 0 ||
                 PyUnicode_Compare(scheme, state->s_wss) == 0) {
            port = 443;
        }
        else {
            if (PyErr_Occurred()) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
    }
    else {
        PyObject *port_text = PyUnicode_Substring(host, port_start, length);
        if (port_text == NULL) {
            return NULL;
        }
        int found = decimal_value(port_text, &port);
        Py_DECREF(port_text);
        if (found <= 0 || port <= 0 || port >= 65536) {
            Py_RETURN_NONE;
        }
    }
    PyObject *address = PyUnicode_Substring(host, address_start, address_end);
    PyObject *number = address ? PyLong_FromLong(port) : NULL;
    PyObject *pair = number ? PyTuple_Pack(2, address, number) : NULL;
    Py_XDECREF(address);
    Py_XDECREF(number);
    return pair;
}

/* Twin of _http._authority: `host:port` of the listening socket, `[v6]:port`, or
 * `localhost` when the server gave none. */
static PyObject *
socket_authority(CoreState *state, PyObject *server)
{
    if (server == NULL) {
        return Py_NewRef(state->s_localhost);
    }
    PyObject *address = PySequence_GetItem(server, 0);
    if (address == NULL) {
        return NULL;
    }
    PyObject *port = PySequence_GetItem(server, 1);
    if (port == NULL) {
        Py_DECREF(address);
        return NULL;
    }
    PyObject *address_text = PyObject_Str(address);
    PyObject *port_text = address_text ? PyObject_Str(port) : NULL;
    Py_DECREF(address);
    Py_DECREF(port);
    if (port_text == NULL) {
        Py_XDECREF(address_text);
        return NULL;
    }
    int is_v6 = PyUnicode_FindChar(address_text, ':', 0, PyUnicode_GET_LENGTH(address_text), 1) >= 0;
    PyObject *v6[5] = {state->s_open_bracket, address_text, state->s_close_bracket_colon, port_text};
    PyObject *v4[3] = {address_text, state->s_colon, port_text};
    PyObject *result = is_v6 ? text_join(v6, 4) : text_join(v4, 3);
    Py_DECREF(address_text);
    Py_DECREF(port_text);
    return result;
}

/* The (name, value) of one header pair: a 2-tuple, or any sequence of two, as the
 * Python twin's `for name, value in headers` takes. New references; -1 on error. */
static int
header_pair(PyObject *pair, PyObject **name, PyObject **value)
{
    if (PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2) {
        *name = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
        *value = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
        return 0;
    }
    PyObject *items = PySequence_Fast(pair, "a header must be a (name, value) pair");
    if (items == NULL) {
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(items) != 2) {
        Py_DECREF(items);
        PyErr_SetString(PyExc_ValueError, "a header must be a (name, value) pair");
        return -1;
    }
    *name = Py_NewRef(PySequence_Fast_GET_ITEM(items, 0));
    *value = Py_NewRef(PySequence_Fast_GET_ITEM(items, 1));
    Py_DECREF(items);
    return 0;
}

/* ---------------------------------------------------------------- captured headers */

/* Twin of _headers.HeaderCapture.collect: a new dict of the captured headers. */
PyObject *
collect_headers(CoreState *state, PyObject *capture, PyObject *headers)
{
    PyObject *keys = PyObject_GetAttr(capture, state->s_keys);
    if (keys == NULL) {
        return NULL;
    }
    PyObject *redacted = PyObject_GetAttr(capture, state->s_redacted);
    PyObject *found = PyDict_New();
    PyObject *pairs = PySequence_Fast(headers, "headers must be a sequence of pairs");
    if (redacted == NULL || found == NULL || pairs == NULL || !PyDict_Check(keys)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "HeaderCapture.keys must be a dict");
        }
        goto error;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(pairs);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name, *raw;
        if (header_pair(PySequence_Fast_GET_ITEM(pairs, i), &name, &raw) < 0) {
            goto error;
        }
        PyObject *key = PyDict_GetItemWithError(keys, name); /* borrowed: keys holds it */
        Py_DECREF(name);
        if (key == NULL) {
            Py_DECREF(raw);
            if (PyErr_Occurred()) {
                goto error;
            }
            continue;
        }
        int secret = PySet_Contains(redacted, key);
        if (secret < 0) {
            Py_DECREF(raw);
            goto error;
        }
        PyObject *kept;
        if (secret) {
            kept = Py_NewRef(state->redacted);
        }
        else {
            PyObject *value = latin1_text(raw);
            if (value == NULL) {
                Py_DECREF(raw);
                goto error;
            }
            kept = PyUnicode_Check(value) ? cap(value, state->max_header_value) : Py_NewRef(value);
            Py_DECREF(value);
            if (kept == NULL) {
                Py_DECREF(raw);
                goto error;
            }
        }
        Py_DECREF(raw);
        PyObject *before = PyDict_GetItemWithError(found, key); /* borrowed */
        PyObject *values;
        if (before != NULL) {
            Py_ssize_t n = PyTuple_GET_SIZE(before);
            values = PyTuple_New(n + 1);
            if (values != NULL) {
                for (Py_ssize_t j = 0; j < n; j++) {
                    PyTuple_SET_ITEM(values, j, Py_NewRef(PyTuple_GET_ITEM(before, j)));
                }
                PyTuple_SET_ITEM(values, n, kept); /* steals */
            }
            else {
                Py_DECREF(kept);
            }
        }
        else if (PyErr_Occurred()) {
            Py_DECREF(kept);
            goto error;
        }
        else {
            values = PyTuple_Pack(1, kept);
            Py_DECREF(kept);
        }
        if (values == NULL || PyDict_SetItem(found, key, values) < 0) {
            Py_XDECREF(values);
            goto error;
        }
        Py_DECREF(values);
    }
    Py_DECREF(pairs);
    Py_DECREF(keys);
    Py_DECREF(redacted);
    return found;
error:
    Py_XDECREF(pairs);
    Py_XDECREF(found);
    Py_XDECREF(redacted);
    Py_DECREF(keys);
    return NULL;
}

/* ---------------------------------------------------------------- begin_http */

enum { SCAN_HOST, SCAN_USER_AGENT, SCAN_CONTENT_LENGTH, SCAN_TRACEPARENT, SCAN_TRACESTATE };

static const struct {
    const char *name;
    Py_ssize_t length;
} SCANNED[] = {
    {"host", 4}, {"user-agent", 10}, {"content-length", 14}, {"traceparent", 11},
    {"tracestate", 10},
};

/* Which scanned header `name` (str or bytes, lowercase) is, or -1. */
static int
scanned_header(PyObject *name)
{
    const char *text;
    Py_ssize_t length;
    if (PyBytes_Check(name)) {
        text = PyBytes_AS_STRING(name);
        length = PyBytes_GET_SIZE(name);
    }
    else if (PyUnicode_Check(name) && PyUnicode_IS_COMPACT_ASCII(name)) {
        text = (const char *)PyUnicode_DATA(name);
        length = PyUnicode_GET_LENGTH(name);
    }
    else {
        return -1;
    }
    for (int which = 0; which < (int)(sizeof(SCANNED) / sizeof(SCANNED[0])); which++) {
        if (length == SCANNED[which].length && memcmp(text, SCANNED[which].name, length) == 0) {
            return which;
        }
    }
    return -1;
}

typedef struct {
    PyObject *host;        /* str or NULL: the last Host line */
    PyObject *traceparent; /* str or NULL */
    Py_ssize_t traceparents;
    PyObject *tracestates; /* list or NULL */
} Scanned;

static void
scanned_clear(Scanned *scan)
{
    Py_CLEAR(scan->host);
    Py_CLEAR(scan->traceparent);
    Py_CLEAR(scan->tracestates);
}

/* Twin of _http._scan_headers: one pass, the attributes it sets go in `attrs`. */
static int
scan_headers(CoreState *state, PyObject *headers, PyObject *attrs, Scanned *scan)
{
    PyObject *pairs = PySequence_Fast(headers, "headers must be a sequence of pairs");
    if (pairs == NULL) {
        return -1;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(pairs);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name, *raw;
        if (header_pair(PySequence_Fast_GET_ITEM(pairs, i), &name, &raw) < 0) {
            goto error;
        }
        int which = scanned_header(name);
        Py_DECREF(name);
        if (which < 0) {
            Py_DECREF(raw);
            continue;
        }
        PyObject *value = latin1_text(raw);
        Py_DECREF(raw);
        if (value == NULL) {
            goto error;
        }
        if (!PyUnicode_Check(value)) {
            Py_DECREF(value);
            PyErr_SetString(PyExc_TypeError, "a header value must be str or bytes");
            goto error;
        }
        int failed = 0;
        if (which == SCAN_HOST) {
            Py_XSETREF(scan->host, value);
            continue;
        }
        if (which == SCAN_USER_AGENT) {
            PyObject *kept = cap(value, state->max_header_value);
            failed = kept == NULL || PyDict_SetItem(attrs, state->s_user_agent, kept) < 0;
            Py_XDECREF(kept);
        }
        else if (which == SCAN_CONTENT_LENGTH) {
            PyObject *size = decimal_object(value);
            if (size != NULL) {
                failed = PyDict_SetItem(attrs, state->s_request_body_size, size) < 0;
                Py_DECREF(size);
            }
            else {
                failed = PyErr_Occurred() != NULL;
            }
        }
        else if (which == SCAN_TRACEPARENT) {
            Py_XSETREF(scan->traceparent, value);
            scan->traceparents++;
            continue;
        }
        else {
            if (scan->tracestates == NULL && (scan->tracestates = PyList_New(0)) == NULL) {
                failed = 1;
            }
            else {
                failed = PyList_Append(scan->tracestates, value) < 0;
            }
        }
        Py_DECREF(value);
        if (failed) {
            goto error;
        }
    }
    Py_DECREF(pairs);
    if (scan->traceparents != 1) {
        Py_CLEAR(scan->traceparent);
    }
    return 0;
error:
    Py_DECREF(pairs);
    return -1;
}

/* Twin of _http._add_parent. */
static int
add_parent(CoreState *state, PyObject *attrs, Scanned *scan)
{
    PyObject *trace_id, *span_id;
    long flags;
    int found = parse_traceparent(scan->traceparent, &trace_id, &span_id, &flags);
    if (found <= 0) {
        return found;
    }
    PyObject *flags_object = PyLong_FromLong(flags);
    int failed = flags_object == NULL ||
                 PyDict_SetItem(attrs, state->parent_trace_id, trace_id) < 0 ||
                 PyDict_SetItem(attrs, state->parent_span_id, span_id) < 0 ||
                 PyDict_SetItem(attrs, state->parent_trace_flags, flags_object) < 0;
    Py_DECREF(trace_id);
    Py_DECREF(span_id);
    Py_XDECREF(flags_object);
    if (failed || scan->tracestates == NULL) {
        return failed ? -1 : 0;
    }
    PyObject *comma = PyUnicode_FromOrdinal(',');
    PyObject *joined = comma == NULL ? NULL : PyUnicode_Join(comma, scan->tracestates);
    Py_XDECREF(comma);
    if (joined == NULL) {
        return -1;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(joined);
    if (length > 0 && length <= state->max_tracestate) {
        failed = PyDict_SetItem(attrs, state->parent_trace_state, joined) < 0;
    }
    Py_DECREF(joined);
    return failed ? -1 : 0;
}

/* Twin of _http._other_form: the url.path, the target URI's path, its scheme and its
 * authority (NULL: none) for a target that is not origin-form. New references. */
static int
other_form(CoreState *state, RequestFields *f, PyObject *host, PyObject **url_path,
           PyObject **uri_path, PyObject **uri_scheme, PyObject **authority)
{
    PyObject *target = f->path;
    Py_ssize_t length = PyUnicode_GET_LENGTH(target);
    Py_ssize_t scheme_end = PyUnicode_Find(target, state->s_scheme_separator, 0, length, 1);
    if (scheme_end == -2) {
        return -1;
    }
    if (scheme_end > 0 && is_scheme(target, scheme_end)) {
        Py_ssize_t rest = scheme_end + 3;
        Py_ssize_t slash = PyUnicode_FindChar(target, '/', rest, length, 1);
        if (slash == -2) {
            return -1;
        }
        *authority = PyUnicode_Substring(target, rest, slash < 0 ? length : slash);
        *url_path = slash < 0 ? Py_NewRef(state->s_slash) : PyUnicode_Substring(target, slash, length);
        *uri_path = Py_XNewRef(*url_path);
        PyObject *scheme = PyUnicode_Substring(target, 0, scheme_end);
        *uri_scheme = scheme == NULL ? NULL : PyObject_CallMethod(scheme, "lower", NULL);
        Py_XDECREF(scheme);
        return (*authority && *url_path && *uri_scheme) ? 0 : -1;
    }
    int is_connect = PyUnicode_Compare(f->method, state->s_connect) == 0;
    if (PyErr_Occurred()) {
        return -1;
    }
    *uri_scheme = Py_NewRef(f->scheme);
    if (is_connect) {
        *url_path = Py_NewRef(state->s_empty);
        *uri_path = Py_NewRef(state->s_empty);
        *authority = Py_NewRef(target);
        return 0;
    }
    *authority = Py_XNewRef(host);
    if (length == 1 && PyUnicode_READ_CHAR(target, 0) == '*') {
        *url_path = Py_NewRef(state->s_star);
        *uri_path = Py_NewRef(state->s_empty);
        return 0;
    }
    *url_path = Py_NewRef(target);
    *uri_path = PyUnicode_Concat(state->s_slash, target);
    return *uri_path ? 0 : -1;
}

static int
set_capped(PyObject *attrs, PyObject *key, PyObject *text, Py_ssize_t limit)
{
    PyObject *kept = cap(text, limit);
    if (kept == NULL) {
        return -1;
    }
    int result = PyDict_SetItem(attrs, key, kept);
    Py_DECREF(kept);
    return result;
}

/* The pair's two items, set as attributes `first` and `second` (second skipped when
 * it is None and `optional`). */
static int
set_pair(PyObject *attrs, PyObject *pair, PyObject *first, PyObject *second, int optional)
{
    PyObject *a = PySequence_GetItem(pair, 0);
    if (a == NULL) {
        return -1;
    }
    PyObject *b = PySequence_GetItem(pair, 1);
    if (b == NULL) {
        Py_DECREF(a);
        return -1;
    }
    int result = PyDict_SetItem(attrs, first, a);
    if (result == 0 && !(optional && b == Py_None)) {
        result = PyDict_SetItem(attrs, second, b);
    }
    Py_DECREF(a);
    Py_DECREF(b);
    return result;
}

/* Twin of _http.begin_http: start an operation and notify the instruments. */
Operation *
begin_http(CoreState *state, PyObject *hooks, RequestFields *f)
{
    PyObject *attrs = NULL, *address = NULL, *url_path = NULL, *uri_path = NULL,
             *uri_scheme = NULL, *authority = NULL, *uri = NULL, *timestamp = NULL;
    Scanned scan = {NULL, NULL, 0, NULL};
    if (!PyUnicode_Check(f->method) || !PyUnicode_Check(f->scheme) || !PyUnicode_Check(f->path) ||
        !PyUnicode_Check(f->query) || !PyUnicode_Check(f->protocol)) {
        PyErr_SetString(PyExc_TypeError, "method, scheme, path, query and protocol must be str");
        return NULL;
    }
    PyObject *start_hooks = NULL, *capture = NULL;
    Operation *op = operation_new(state, hooks, &start_hooks, &capture);
    if (op == NULL) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(start_hooks) == 0) { /* attributes only for an instrument that reads them */
        Py_DECREF(start_hooks);
        Py_DECREF(capture);
        return op;
    }
    int known = PySet_Contains(state->known_methods, f->method);
    timestamp = PyLong_FromLongLong(wall_clock_ns());
    attrs = PyDict_New();
    if (known < 0 || timestamp == NULL || attrs == NULL ||
        PyDict_SetItem(attrs, state->s_operation_id, op->id) < 0 ||
        PyDict_SetItem(attrs, state->s_operation_timestamp, timestamp) < 0 ||
        PyDict_SetItem(attrs, state->s_method, known ? f->method : state->s_other) < 0 ||
        PyDict_SetItem(attrs, state->s_url_scheme, f->scheme) < 0) {
        goto error;
    }
    if (!known && PyUnicode_GET_LENGTH(f->method) > 0 &&
        set_capped(attrs, state->s_method_original, f->method, state->max_header_value) < 0) {
        goto error;
    }
    if (PyUnicode_GET_LENGTH(f->query) > 0 &&
        set_capped(attrs, state->s_url_query, f->query, state->max_url) < 0) {
        goto error;
    }
    if (scan_headers(state, f->headers, attrs, &scan) < 0) {
        goto error;
    }
    if (starts_with_char(f->path, '/')) {
        url_path = Py_NewRef(f->path);
        uri_path = Py_NewRef(f->path);
        uri_scheme = Py_NewRef(f->scheme);
        authority = Py_XNewRef(scan.host);
    }
    else if (other_form(state, f, scan.host, &url_path, &uri_path, &uri_scheme, &authority) < 0) {
        goto error;
    }
    if (set_capped(attrs, state->s_url_path, url_path, state->max_url) < 0) {
        goto error;
    }
    if (authority != NULL && PyUnicode_GET_LENGTH(authority) > 0) {
        address = split_host(state, authority, uri_scheme);
        if (address == NULL) {
            goto error;
        }
    }
    if (address == NULL || address == Py_None) {
        Py_XSETREF(address, Py_XNewRef(f->server));
        Py_XSETREF(authority, socket_authority(state, f->server));
        if (authority == NULL) {
            goto error;
        }
    }
    if (address != NULL &&
        set_pair(attrs, address, state->s_server_address, state->s_server_port, 0) < 0) {
        goto error;
    }
    int with_query = PyUnicode_GET_LENGTH(f->query) > 0 && PyUnicode_GET_LENGTH(uri_path) > 0;
    PyObject *parts[6] = {uri_scheme, state->s_scheme_separator, authority, uri_path,
                          state->s_question_mark, f->query};
    uri = text_join(parts, with_query ? 6 : 4);
    if (uri == NULL) {
        goto error;
    }
    if (set_capped(attrs, state->s_url_full, uri, state->max_url) < 0) {
        goto error;
    }
    if (f->client != NULL &&
        set_pair(attrs, f->client, state->s_client_address, state->s_client_port, 1) < 0) {
        goto error;
    }
    if (PyUnicode_GET_LENGTH(f->protocol) > 0 &&
        PyDict_SetItem(attrs, state->s_protocol_version, f->protocol) < 0) {
        goto error;
    }
    if (scan.traceparent != NULL && add_parent(state, attrs, &scan) < 0) {
        goto error;
    }
    if (capture != Py_None) {
        PyObject *found = collect_headers(state, capture, f->headers);
        if (found == NULL || PyDict_Update(attrs, found) < 0) {
            Py_XDECREF(found);
            goto error;
        }
        Py_DECREF(found);
    }
    if (notify(state, start_hooks, state->s_on_start, op->id, attrs) < 0) {
        goto error;
    }
    Py_DECREF(attrs);
    Py_DECREF(timestamp);
    Py_XDECREF(address);
    Py_DECREF(url_path);
    Py_DECREF(uri_path);
    Py_DECREF(uri_scheme);
    Py_DECREF(authority);
    Py_DECREF(uri);
    Py_DECREF(start_hooks);
    Py_DECREF(capture);
    scanned_clear(&scan);
    return op;
error:
    Py_XDECREF(start_hooks);
    Py_XDECREF(capture);
    Py_XDECREF(attrs);
    Py_XDECREF(timestamp);
    Py_XDECREF(address);
    Py_XDECREF(url_path);
    Py_XDECREF(uri_path);
    Py_XDECREF(uri_scheme);
    Py_XDECREF(authority);
    Py_XDECREF(uri);
    scanned_clear(&scan);
    Py_DECREF(op);
    return NULL;
}

/* begin_http(hooks, *, method, scheme, path, query, headers, server, client, protocol)
 * for the hook points written in Python (http.server) and for the tests. */
PyObject *
core_begin_http(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"method", "scheme", "path", "query", "headers",
                                        "server", "client", "protocol"};
    PyObject *values[8] = {NULL};
    if (nargs != 1 || kwnames == NULL || PyTuple_GET_SIZE(kwnames) != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "begin_http(hooks, *, method, scheme, path, query, headers, server, "
                        "client, protocol)");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < 8; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        int matched = 0;
        for (int j = 0; j < 8; j++) {
            if (PyUnicode_CompareWithASCIIString(name, names[j]) == 0) {
                values[j] = args[1 + i];
                matched = 1;
            }
        }
        if (!matched) {
            PyErr_Format(PyExc_TypeError, "begin_http() got an unexpected keyword %R", name);
            return NULL;
        }
    }
    RequestFields fields = {values[0], values[1], values[2], values[3], values[4],
                            values[5] == Py_None ? NULL : values[5],
                            values[6] == Py_None ? NULL : values[6], values[7]};
    CoreState *state = PyModule_GetState(module);
    return (PyObject *)begin_http(state, args[0], &fields);
}
