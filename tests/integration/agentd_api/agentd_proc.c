#include "agentd_proc.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct buf {
    char *s;
    size_t len, cap;
} buf;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    buf *b = ud;
    size_t add = sz * n;
    if (b->len + add + 1 > b->cap) {
        size_t cap = (b->len + add + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s)
            return 0;
        b->s = s, b->cap = cap;
    }
    memcpy(b->s + b->len, p, add);
    b->len += add;
    b->s[b->len] = '\0';
    return add;
}

long agentd_http(int port, const char *method, const char *path, const char *auth,
                 char **body, char *hdrs, size_t hlen)
{
    return agentd_http_send(port, method, path, auth, NULL, body, hdrs, hlen);
}

long agentd_http_send(int port, const char *method, const char *path, const char *auth,
                      const char *req_body, char **body, char *hdrs, size_t hlen)
{
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    char url[512], ah[300];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    buf b = {0}, h = {0};
    struct curl_slist *sl = NULL;
    if (auth) {
        snprintf(ah, sizeof ah, "Authorization: %s", auth);
        sl = curl_slist_append(sl, ah);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (req_body) {
        sl = curl_slist_append(sl, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req_body);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (hdrs)
        snprintf(hdrs, hlen, "%s", h.s ? h.s : "");
    if (body)
        *body = b.s;
    else
        free(b.s);
    free(h.s);
    curl_slist_free_all(sl);
    curl_easy_cleanup(c);
    return status;
}

static int write_conf(agentd_proc *a, const redis_proc *r, const char *extra)
{
    static int starts;
    char tag[64], url[256];
    snprintf(tag, sizeof tag, "agentd-%d", ++starts);
    proc_tmpdir(tag, a->dir, sizeof a->dir);
    snprintf(a->conf, sizeof a->conf, "%s/agentd.conf", a->dir);
    snprintf(a->logpath, sizeof a->logpath, "%s/agentd.log", a->dir);
    a->port = proc_free_port();
    FILE *f = fopen(a->conf, "w");
    if (!f)
        return -1;
    fprintf(f, "[general]\nport = %d\ntokens = other-token-abcdefghij, %s\nredis_url = %s\n%s\n",
            a->port, AGENTD_TOKEN, redis_proc_url(r, 0, url, sizeof url), extra ? extra : "");
    return fclose(f) == 0 ? 0 : -1;
}

static int reading(const agentd_proc *a)
{
    char *body = NULL;
    long st = agentd_http(a->port, "GET", "/api/v1/health", AGENTD_AUTH, &body, NULL, 0);
    int ok = st == 200 && body && strstr(body, "\"reading\":true");
    free(body);
    return ok;
}

int agentd_proc_start(agentd_proc *a, const redis_proc *r, const char *extra)
{
    memset(a, 0, sizeof *a);
    if (write_conf(a, r, extra) != 0)
        return -1;
    char bin[512];
    proc_build_path("agentd/agentd", bin, sizeof bin);
    const char *argv[] = {bin, "-c", a->conf, NULL};
    if (proc_start(&a->proc, argv, a->logpath) != 0)
        return -1;
    for (int i = 0; i < 1000 && proc_alive(&a->proc); i++) {
        if (reading(a))
            return 0;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    fprintf(stderr, "agentd_proc: not ready (log: %s)\n", a->logpath);
    proc_stop(&a->proc, SIGKILL, 1000);
    return -1;
}

int agentd_proc_stop(agentd_proc *a)
{
    return proc_stop(&a->proc, SIGTERM, 5000);
}

int agentd_proc_log_count(const agentd_proc *a, const char *needle)
{
    FILE *f = fopen(a->logpath, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}
