/* client_fake.c - the scripted ari_rest transport for unit tests.
 *
 * Requests are kept in an array of pointers (so a callback appending new
 * requests never moves the one being answered). The test answers them one by
 * one; the answer runs the callback at once, as the loop would. As with the
 * real client, freeing from inside a callback is deferred until that callback
 * returns. */
#include "ari/client.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

typedef struct fake_req {
    char *method, *path, *body;
    ari_cb cb;
    void *pd;
    bool answered;
} fake_req;

struct ari_fake {
    ari_rest rest;
    fake_req **reqs;
    size_t n, cap, npending;
    int refuse;
    int depth;      /* callbacks of ours on the stack */
    bool closing;
};

static int fake_request(void *impl, const char *method, const char *path,
                        const json_t *body, ari_cb cb, void *pd);

static const ari_rest_ops fake_ops = {.request = fake_request};

static void req_free(fake_req *q)
{
    if (!q)
        return;
    free(q->method);
    free(q->path);
    free(q->body);
    free(q);
}

/* Makes room for one more request pointer. */
static int fake_grow(ari_fake *f)
{
    size_t cap;
    fake_req **nr;

    if (f->n < f->cap)
        return 0;
    cap = f->cap ? f->cap * 2 : 16;
    if (!(nr = realloc(f->reqs, cap * sizeof *nr)))
        return ARIQ_ENOMEM;
    f->reqs = nr;
    f->cap = cap;
    return 0;
}

static int fake_request(void *impl, const char *method, const char *path,
                        const json_t *body, ari_cb cb, void *pd)
{
    ari_fake *f = impl;
    fake_req *q;

    if (f->closing)
        return ARIQ_ECLOSED;
    if (f->refuse)
        return f->refuse;
    if (fake_grow(f) != 0 || !(q = calloc(1, sizeof *q)))
        return ARIQ_ENOMEM;
    q->method = strdup(method);
    q->path = strdup(path);
    q->body = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (!q->method || !q->path || (body && !q->body)) {
        req_free(q);
        return ARIQ_ENOMEM;
    }
    q->cb = cb;
    q->pd = pd;
    f->reqs[f->n++] = q;
    f->npending++;
    return 0;
}

ari_fake *ari_fake_new(void)
{
    ari_fake *f = calloc(1, sizeof *f);

    if (!f)
        return NULL;
    f->rest.ops = &fake_ops;
    f->rest.impl = f;
    return f;
}

static void fake_destroy(ari_fake *f);

/* Runs request q's callback with r, marking it answered first. */
static void fake_complete(ari_fake *f, fake_req *q, ari_response *r)
{
    q->answered = true;
    f->npending--;
    r->method = q->method;
    r->path = q->path;
    f->depth++;
    if (q->cb)
        q->cb(&f->rest, r, q->pd);
    if (--f->depth == 0 && f->closing)
        fake_destroy(f);
}

/* Completes what is unanswered with ECLOSED and frees everything. */
static void fake_destroy(ari_fake *f)
{
    f->closing = true;
    f->depth++; /* nested frees from the ECLOSED callbacks do nothing */
    for (size_t i = 0; i < f->n; i++) {
        if (!f->reqs[i]->answered) {
            ari_response r = {.err = ARIQ_ECLOSED, .error = "client closed", .body = ""};
            f->reqs[i]->answered = true;
            f->npending--;
            r.method = f->reqs[i]->method;
            r.path = f->reqs[i]->path;
            if (f->reqs[i]->cb)
                f->reqs[i]->cb(&f->rest, &r, f->reqs[i]->pd);
        }
    }
    for (size_t i = 0; i < f->n; i++)
        req_free(f->reqs[i]);
    free(f->reqs);
    free(f);
}

void ari_fake_free(ari_fake *f)
{
    if (!f || f->closing)
        return;
    f->closing = true;
    if (f->depth == 0)
        fake_destroy(f);
}

ari_rest *ari_fake_rest(ari_fake *f)
{
    return f ? &f->rest : NULL;
}

void ari_fake_refuse(ari_fake *f, int err)
{
    f->refuse = err;
}

size_t ari_fake_count(const ari_fake *f)
{
    return f ? f->n : 0;
}

size_t ari_fake_pending(const ari_fake *f)
{
    return f ? f->npending : 0;
}

static const fake_req *fake_at(const ari_fake *f, size_t i)
{
    return f && i < f->n ? f->reqs[i] : NULL;
}

const char *ari_fake_method(const ari_fake *f, size_t i)
{
    const fake_req *q = fake_at(f, i);
    return q ? q->method : NULL;
}

const char *ari_fake_path(const ari_fake *f, size_t i)
{
    const fake_req *q = fake_at(f, i);
    return q ? q->path : NULL;
}

const char *ari_fake_body(const ari_fake *f, size_t i)
{
    const fake_req *q = fake_at(f, i);
    return q ? q->body : NULL;
}

bool ari_fake_answered(const ari_fake *f, size_t i)
{
    const fake_req *q = fake_at(f, i);
    return q ? q->answered : false;
}

long ari_fake_find(const ari_fake *f, const char *method, const char *path_prefix)
{
    for (size_t i = 0; f && i < f->n; i++) {
        const fake_req *q = f->reqs[i];
        if (q->answered)
            continue;
        if (method && strcmp(q->method, method) != 0)
            continue;
        if (path_prefix && strncmp(q->path, path_prefix, strlen(path_prefix)) != 0)
            continue;
        return (long)i;
    }
    return -1;
}

/* The request i may be answered: it exists and was not answered yet. */
static int fake_check(const ari_fake *f, size_t i)
{
    const fake_req *q = fake_at(f, i);

    if (!q || f->closing)
        return ARIQ_ENOTFOUND;
    return q->answered ? ARIQ_ESTATE : 0;
}

int ari_fake_respond(ari_fake *f, size_t i, long status, const char *body)
{
    ari_response r = {.status = status, .body = body ? body : ""};
    int rc = fake_check(f, i);

    if (rc)
        return rc;
    r.body_len = strlen(r.body);
    if (r.body_len)
        r.json = json_loadb(r.body, r.body_len, JSON_DECODE_ANY, NULL);
    fake_complete(f, f->reqs[i], &r); /* may free f */
    json_decref(r.json);
    return 0;
}

int ari_fake_fail(ari_fake *f, size_t i, int err)
{
    ari_response r = {.err = err, .error = ariq_strerror(err), .body = ""};
    int rc = fake_check(f, i);

    if (rc)
        return rc;
    fake_complete(f, f->reqs[i], &r);
    return 0;
}
