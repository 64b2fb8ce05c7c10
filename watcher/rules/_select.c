/* Steps 1 (the boundary checks) and 2 (the selection) of RuleSet.match_fields, in C.

   matcher.py holds the reference implementation of both steps in Python, and the design: read its module
   docstring first. This module takes what ahocorasick_rs reports for an entry (pattern index, start, end of
   every occurrence, over the padded UTF-8 bytes of a field) and returns the found terms and the selected rules,
   with the same results as _IdScanner.scan + _Selector.select (tests/test_matcher.py checks them against each
   other). Everything here is tables built once per RuleSet; per entry, work follows the occurrences and the
   rules they touch, not the number of rules.

   Per entry, scratch arrays are reset by a generation stamp, not cleared. select() holds the GIL, and it makes no
   Python object (nor runs any Python code) while it uses them: two threads may share an Index.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS 64 /* groups a rule may require here: the bits of a uint64_t (native.py keeps to it) */

typedef struct {
    Py_ssize_t npatterns;
    uint8_t *left;   /* pattern -> needs a word boundary before it */
    uint8_t *right;  /* ... after it */
    int32_t *tids;   /* pattern -> term id, or -1 */
    int32_t *prefix; /* pattern -> term id when the match ends within the prefix (the title), or -1 */
} Scanner;

typedef struct {
    PyObject_HEAD
    Py_ssize_t nterms, nrules, nscanners, nalways;
    Scanner *scanners;
    uint8_t word[256];  /* byte -> is an ASCII letter or digit */
    /* term -> the groups it belongs to, mem[mem_off[t] .. mem_off[t + 1]], each as rule << 6 | slot */
    int32_t *mem_off, *mem;
    int32_t *excl_off, *excl; /* term -> the rules it excludes */
    int32_t *rule_ngroups;    /* rule -> how many groups it requires, at most MAX_GROUPS */
    uint64_t *rule_need;      /* rule -> the slots of its groups, all set */
    int32_t *always;          /* rules that require no group: selected unless excluded */
    int32_t *ex_off, *ex;     /* rule -> its terms, ascending, if it is decided by its terms */
    uint8_t *exact;           /* rule -> decided by its terms (1) or evaluated in full (0) */
    int ready;                /* __init__ succeeded */
    /* scratch */
    uint32_t gen;
    uint32_t *term_gen, *rule_gen, *excl_gen;
    uint64_t *rule_has; /* rule -> the slots of its groups with a found term (valid where rule_gen is gen) */
    int32_t *found, *touched, *cands;
} Index;

static void *
copy_buffer(Py_buffer *view, Py_ssize_t itemsize, Py_ssize_t *count)
{
    if (view->len % itemsize != 0) {
        PyErr_SetString(PyExc_ValueError, "a table's length is not a multiple of its item size");
        return NULL;
    }
    *count = view->len / itemsize;
    void *out = PyMem_Malloc(view->len ? (size_t)view->len : 1);
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(out, view->buf, (size_t)view->len);
    return out;
}

/* An int32 table from a bytes-like object (array('i').tobytes()), `expect` items long unless negative. */
static int32_t *
int_table(PyObject *obj, Py_ssize_t expect, Py_ssize_t *count, const char *name)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t n = 0;
    int32_t *out = copy_buffer(&view, sizeof(int32_t), &n);
    PyBuffer_Release(&view);
    if (out == NULL)
        return NULL;
    if (expect >= 0 && n != expect) {
        PyMem_Free(out);
        PyErr_Format(PyExc_ValueError, "table %s: %zd items, expected %zd", name, n, expect);
        return NULL;
    }
    if (count)
        *count = n;
    return out;
}

static uint8_t *
byte_table(PyObject *obj, Py_ssize_t expect, const char *name)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t n = 0;
    uint8_t *out = copy_buffer(&view, 1, &n);
    PyBuffer_Release(&view);
    if (out != NULL && n != expect) {
        PyMem_Free(out);
        PyErr_Format(PyExc_ValueError, "table %s: %zd items, expected %zd", name, n, expect);
        return NULL;
    }
    return out;
}

/* Every value of table[0..n) within [lo, hi) (hi exclusive). */
static int
in_range(const int32_t *table, Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi, const char *name)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (table[i] < lo || table[i] >= hi) {
            PyErr_Format(PyExc_ValueError, "table %s: item %zd is %d, outside [%zd, %zd)", name, i,
                         (int)table[i], lo, hi);
            return 0;
        }
    }
    return 1;
}

/* offsets[0..n] ascending from 0, the last being the length of the values table. */
static int
valid_offsets(const int32_t *offsets, Py_ssize_t n, Py_ssize_t nvalues, const char *name)
{
    if (offsets[0] != 0 || offsets[n] != nvalues) {
        PyErr_Format(PyExc_ValueError, "table %s: offsets must run from 0 to %zd", name, nvalues);
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (offsets[i] > offsets[i + 1]) {
            PyErr_Format(PyExc_ValueError, "table %s: offsets must not decrease", name);
            return 0;
        }
    }
    return 1;
}

static void
Index_clear_tables(Index *self)
{
    if (self->scanners) {
        for (Py_ssize_t i = 0; i < self->nscanners; i++) {
            PyMem_Free(self->scanners[i].left);
            PyMem_Free(self->scanners[i].right);
            PyMem_Free(self->scanners[i].tids);
            PyMem_Free(self->scanners[i].prefix);
        }
        PyMem_Free(self->scanners);
        self->scanners = NULL;
    }
    void **tables[] = {
        (void **)&self->mem_off, (void **)&self->mem, (void **)&self->excl_off, (void **)&self->excl,
        (void **)&self->rule_ngroups, (void **)&self->rule_need, (void **)&self->always,
        (void **)&self->ex_off, (void **)&self->ex, (void **)&self->exact, (void **)&self->term_gen,
        (void **)&self->rule_gen, (void **)&self->excl_gen, (void **)&self->rule_has, (void **)&self->found, (void **)&self->touched, (void **)&self->cands,
    };
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        PyMem_Free(*tables[i]);
        *tables[i] = NULL;
    }
}

static void
Index_dealloc(Index *self)
{
    Index_clear_tables(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Index_init(Index *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"nterms", "word", "memberships", "members", "exclusion_offsets", "exclusions",
                             "rule_groups", "exact", "exact_offsets", "exact_terms",
                             "scanners", NULL};
    Py_ssize_t nterms;
    PyObject *word, *mem_off, *mem, *excl_off, *excl, *rule_ngroups, *exact, *ex_off, *ex;
    PyObject *scanners;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "nOOOOOOOOOO", kwlist, &nterms, &word, &mem_off, &mem,
                                     &excl_off, &excl, &rule_ngroups, &exact, &ex_off, &ex, &scanners))
        return -1;
    Index_clear_tables(self);
    self->ready = 0;
    if (nterms < 0 || nterms > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "nterms out of range");
        return -1;
    }
    self->nterms = nterms;
    uint8_t *w = byte_table(word, 256, "word");
    if (w == NULL)
        return -1;
    memcpy(self->word, w, 256);
    PyMem_Free(w);

    Py_ssize_t nmem, nexcl, nex;
    if (!(self->rule_ngroups = int_table(rule_ngroups, -1, &self->nrules, "rule_groups")))
        return -1;
    Py_ssize_t nrules = self->nrules;
    if (nrules > (INT32_MAX >> 6)) {
        PyErr_SetString(PyExc_ValueError, "too many rules");
        return -1;
    }
    if (!(self->mem_off = int_table(mem_off, nterms + 1, NULL, "memberships")) ||
        !(self->mem = int_table(mem, -1, &nmem, "members")) ||
        !(self->excl_off = int_table(excl_off, nterms + 1, NULL, "exclusion_offsets")) ||
        !(self->excl = int_table(excl, -1, &nexcl, "exclusions")) ||
        !(self->exact = byte_table(exact, nrules, "exact")) ||
        !(self->ex_off = int_table(ex_off, nrules + 1, NULL, "exact_offsets")) ||
        !(self->ex = int_table(ex, -1, &nex, "exact_terms")))
        return -1;
    if (!valid_offsets(self->mem_off, nterms, nmem, "memberships") ||
        !valid_offsets(self->excl_off, nterms, nexcl, "exclusion_offsets") ||
        !in_range(self->excl, nexcl, 0, nrules, "exclusions") ||
        !in_range(self->rule_ngroups, nrules, 0, MAX_GROUPS + 1, "rule_groups") ||
        !valid_offsets(self->ex_off, nrules, nex, "exact_offsets") || !in_range(self->ex, nex, 0, nterms, "exact_terms"))
        return -1;
    for (Py_ssize_t j = 0; j < nmem; j++) {
        int32_t m = self->mem[j], r = m >> 6, slot = m & 63;
        if (m < 0 || r >= nrules || slot >= self->rule_ngroups[r]) {
            PyErr_Format(PyExc_ValueError, "table members: item %zd (rule %d, slot %d) out of range", j, (int)r,
                         (int)slot);
            return -1;
        }
    }

    /* each rule's full mask, and the rules that require no group */
    self->rule_need = PyMem_Calloc((size_t)nrules + 1, sizeof(uint64_t));
    if (self->rule_need == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t nalways = 0;
    for (Py_ssize_t r = 0; r < nrules; r++) {
        int32_t n = self->rule_ngroups[r];
        self->rule_need[r] = n == MAX_GROUPS ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1);
        nalways += n == 0;
    }
    self->nalways = nalways;
    self->always = PyMem_Malloc(((size_t)nalways + 1) * sizeof(int32_t));
    if (self->always == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t r = 0, i = 0; r < nrules; r++)
        if (self->rule_ngroups[r] == 0)
            self->always[i++] = (int32_t)r;

    /* scanners: (left, right, tids, prefix) per field automaton */
    PyObject *seq = PySequence_Fast(scanners, "scanners must be a sequence");
    if (seq == NULL)
        return -1;
    Py_ssize_t nscanners = PySequence_Fast_GET_SIZE(seq);
    self->scanners = PyMem_Calloc((size_t)nscanners + 1, sizeof(Scanner));
    if (self->scanners == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    self->nscanners = nscanners;
    for (Py_ssize_t i = 0; i < nscanners; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *left, *right, *tids, *prefix;
        Scanner *s = &self->scanners[i];
        if (!PyTuple_Check(item)) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "a scanner is a tuple (left, right, tids, prefix)");
            return -1;
        }
        if (!PyArg_ParseTuple(item, "OOOO;a scanner is (left, right, tids, prefix)", &left, &right, &tids, &prefix) ||
            !(s->tids = int_table(tids, -1, &s->npatterns, "tids")) ||
            !(s->prefix = int_table(prefix, s->npatterns, NULL, "prefix")) ||
            !(s->left = byte_table(left, s->npatterns, "left")) ||
            !(s->right = byte_table(right, s->npatterns, "right")) ||
            !in_range(s->tids, s->npatterns, -1, nterms, "tids") ||
            !in_range(s->prefix, s->npatterns, -1, nterms, "prefix")) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);

    /* scratch */
    self->gen = 0;
    if (!(self->term_gen = PyMem_Calloc((size_t)nterms + 1, sizeof(uint32_t))) ||
        !(self->rule_gen = PyMem_Calloc((size_t)nrules + 1, sizeof(uint32_t))) ||
        !(self->excl_gen = PyMem_Calloc((size_t)nrules + 1, sizeof(uint32_t))) ||
        !(self->rule_has = PyMem_Calloc((size_t)nrules + 1, sizeof(uint64_t))) ||
        !(self->found = PyMem_Calloc((size_t)nterms + 1, sizeof(int32_t))) ||
        !(self->touched = PyMem_Calloc((size_t)nrules + 1, sizeof(int32_t))) ||
        !(self->cands = PyMem_Calloc((size_t)nrules + 1, sizeof(int32_t)))) {
        PyErr_NoMemory();
        return -1;
    }
    self->ready = 1;
    return 0;
}

static int
compare_int32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* A non-negative C integer from an exact int (no __index__: no Python code runs while tables are in use). */
static int
as_index(PyObject *obj, Py_ssize_t *out)
{
    if (!PyLong_CheckExact(obj)) {
        PyErr_SetString(PyExc_TypeError, "a match must be a tuple of 3 ints");
        return 0;
    }
    *out = PyLong_AsSsize_t(obj);
    if (*out == -1 && PyErr_Occurred())
        return 0;
    return 1;
}

#define ADD_TERM(t)                                                                                          \
    do {                                                                                                     \
        int32_t t_ = (t);                                                                                    \
        if (t_ >= 0 && self->term_gen[t_] != gen) {                                                          \
            self->term_gen[t_] = gen;                                                                        \
            self->found[nfound++] = t_;                                                                      \
        }                                                                                                    \
    } while (0)

/* Step 1's boundary checks for one field: add the terms of the valid occurrences to self->found. */
static int
scan_one(Index *self, PyObject *scan, Py_ssize_t *nfound_io)
{
    Py_ssize_t k, end_of_prefix;
    PyObject *matches;
    Py_buffer data;
    if (!PyTuple_Check(scan)) {
        PyErr_SetString(PyExc_TypeError, "a scan is a tuple (scanner, matches, data, end_of_prefix)");
        return 0;
    }
    if (!PyArg_ParseTuple(scan, "nOy*n;a scan is (scanner, matches, data, end_of_prefix)", &k, &matches, &data,
                          &end_of_prefix))
        return 0;
    int ok = 0;
    PyObject *seq = NULL;
    if (k < 0 || k >= self->nscanners) {
        PyErr_Format(PyExc_IndexError, "no scanner %zd", k);
        goto done;
    }
    if (!PyList_CheckExact(matches) && !PyTuple_CheckExact(matches)) { /* no copy: see select() */
        PyErr_SetString(PyExc_TypeError, "matches must be a list or a tuple");
        goto done;
    }
    seq = PySequence_Fast(matches, "");
    if (seq == NULL)
        goto done;
    const Scanner *s = &self->scanners[k];
    const uint8_t *bytes = data.buf, *word = self->word;
    Py_ssize_t len = data.len, n = PySequence_Fast_GET_SIZE(seq), nfound = *nfound_io;
    uint32_t gen = self->gen;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = items[i];
        Py_ssize_t pid, start, end;
        if (!PyTuple_CheckExact(m) || PyTuple_GET_SIZE(m) != 3) {
            PyErr_SetString(PyExc_TypeError, "a match must be a tuple of 3 ints");
            goto done;
        }
        if (!as_index(PyTuple_GET_ITEM(m, 0), &pid) || !as_index(PyTuple_GET_ITEM(m, 1), &start) ||
            !as_index(PyTuple_GET_ITEM(m, 2), &end))
            goto done;
        if (pid < 0 || pid >= s->npatterns || start < 0 || end < start || end > len) {
            PyErr_Format(PyExc_ValueError, "match (%zd, %zd, %zd) out of range", pid, start, end);
            goto done;
        }
        /* the byte beside an edge: the edge of the data counts as a boundary */
        if (s->left[pid] && start > 0 && word[bytes[start - 1]])
            continue;
        if (s->right[pid] && end < len && word[bytes[end]])
            continue;
        ADD_TERM(s->tids[pid]);
        if (end <= end_of_prefix)
            ADD_TERM(s->prefix[pid]);
    }
    *nfound_io = nfound;
    ok = 1;
done:
    Py_XDECREF(seq);
    PyBuffer_Release(&data);
    return ok;
}

static PyObject *
int_list(const int32_t *values, Py_ssize_t n)
{
    PyObject *list = PyList_New(n);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLong(values[i]);
        if (v == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

PyDoc_STRVAR(select_doc,
"select(scans) -> (found, rules, keys)\n\n"
"scans: (scanner, matches, data, end_of_prefix) per field scanned, `matches` as ahocorasick_rs reports them\n"
"over `data`. found: the term ids with a valid occurrence; rules: the selected rules, ascending; keys: per\n"
"selected rule, the ids of its terms found (ascending) if it is decided by its terms, else None.");

static PyObject *
Index_select(Index *self, PyObject *scans)
{
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Index not initialised");
        return NULL;
    }
    if (++self->gen == 0) { /* wrapped: forget every stamp */
        memset(self->term_gen, 0, (size_t)self->nterms * sizeof(uint32_t));
        memset(self->rule_gen, 0, (size_t)self->nrules * sizeof(uint32_t));
        memset(self->excl_gen, 0, (size_t)self->nrules * sizeof(uint32_t));
        self->gen = 1;
    }
    uint32_t gen = self->gen;
    if (!PyList_CheckExact(scans) && !PyTuple_CheckExact(scans)) {
        PyErr_SetString(PyExc_TypeError, "scans must be a list or a tuple");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(scans, "");
    if (seq == NULL)
        return NULL;
    Py_ssize_t nfound = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        if (!scan_one(self, PySequence_Fast_GET_ITEM(seq, i), &nfound)) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);

    /* step 2: each rule's groups with a found term; the excluded rules */
    Py_ssize_t ntouched = 0;
    for (Py_ssize_t i = 0; i < nfound; i++) {
        int32_t t = self->found[i];
        for (int32_t j = self->excl_off[t]; j < self->excl_off[t + 1]; j++)
            self->excl_gen[self->excl[j]] = gen;
        for (int32_t j = self->mem_off[t]; j < self->mem_off[t + 1]; j++) {
            int32_t r = self->mem[j] >> 6;
            if (self->rule_gen[r] != gen) {
                self->rule_gen[r] = gen;
                self->rule_has[r] = 0;
                self->touched[ntouched++] = r;
            }
            self->rule_has[r] |= (uint64_t)1 << (self->mem[j] & 63);
        }
    }
    Py_ssize_t ncands = 0;
    for (Py_ssize_t i = 0; i < ntouched; i++) {
        int32_t r = self->touched[i];
        if (self->rule_has[r] == self->rule_need[r] && self->excl_gen[r] != gen)
            self->cands[ncands++] = r;
    }
    for (Py_ssize_t i = 0; i < self->nalways; i++) {
        int32_t r = self->always[i];
        if (self->excl_gen[r] != gen)
            self->cands[ncands++] = r;
    }
    qsort(self->cands, (size_t)ncands, sizeof(int32_t), compare_int32);

    /* The result, copied out of the scratch arrays before any Python object is made: making one may run the
       garbage collector, a finalizer, and there another thread's select() on this index. Laid out as: found
       terms, selected rules, per selected rule its key's length (-1: None), the keys' terms. */
    Py_ssize_t nkeys = 0;
    for (Py_ssize_t i = 0; i < ncands; i++) {
        int32_t r = self->cands[i];
        if (self->exact[r])
            for (int32_t j = self->ex_off[r]; j < self->ex_off[r + 1]; j++)
                nkeys += self->term_gen[self->ex[j]] == gen;
    }
    int32_t *res = PyMem_Malloc(((size_t)(nfound + 2 * ncands + nkeys) + 1) * sizeof(int32_t));
    if (res == NULL)
        return PyErr_NoMemory();
    int32_t *res_found = res, *res_rules = res + nfound, *res_lens = res_rules + ncands, *at = res_lens + ncands;
    memcpy(res_found, self->found, (size_t)nfound * sizeof(int32_t));
    memcpy(res_rules, self->cands, (size_t)ncands * sizeof(int32_t));
    for (Py_ssize_t i = 0; i < ncands; i++) {
        int32_t r = self->cands[i], n = -1;
        if (self->exact[r]) {
            n = 0;
            for (int32_t j = self->ex_off[r]; j < self->ex_off[r + 1]; j++) {
                if (self->term_gen[self->ex[j]] == gen) {
                    *at++ = self->ex[j];
                    n++;
                }
            }
        }
        res_lens[i] = n;
    }

    PyObject *out = NULL, *found = int_list(res_found, nfound), *rules = int_list(res_rules, ncands);
    PyObject *keys = PyList_New(ncands);
    if (found == NULL || rules == NULL || keys == NULL)
        goto done;
    at = res_lens + ncands;
    for (Py_ssize_t i = 0; i < ncands; i++) {
        PyObject *key;
        if (res_lens[i] < 0) {
            key = Py_NewRef(Py_None);
        }
        else {
            key = PyTuple_New(res_lens[i]);
            if (key == NULL)
                goto done;
            for (int32_t j = 0; j < res_lens[i]; j++) {
                PyObject *v = PyLong_FromLong(*at++);
                if (v == NULL) {
                    Py_DECREF(key);
                    goto done;
                }
                PyTuple_SET_ITEM(key, j, v);
            }
        }
        PyList_SET_ITEM(keys, i, key);
    }
    out = PyTuple_Pack(3, found, rules, keys);
done:
    PyMem_Free(res);
    Py_XDECREF(found);
    Py_XDECREF(rules);
    Py_XDECREF(keys);
    return out;
}

static PyMethodDef Index_methods[] = {
    {"select", (PyCFunction)Index_select, METH_O, select_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Index_doc, "The tables of one RuleSet's steps 1 and 2, built by native.py (build_index).");

static PyTypeObject IndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "watcher.rules._select.Index",
    .tp_basicsize = sizeof(Index),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Index_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Index_init,
    .tp_dealloc = (destructor)Index_dealloc,
    .tp_methods = Index_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "watcher.rules._select",
    .m_doc = "Steps 1 and 2 of rule matching in C (optional: matcher.py has the same in Python).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__select(void)
{
    if (PyType_Ready(&IndexType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Index", (PyObject *)&IndexType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
