/* sim_main.c - the asterisk-sim program: options, the INI file, signals.
 *
 *   asterisk-sim --node NAME:PORT [--node NAME:PORT ...] [--scale F]
 *                [--user U --password P] [--bind ADDR] [--config FILE]
 *                [--max-runtime SEC] [--ready-file PATH] [--ws-queue-max BYTES]
 *
 * Exit status: 0 after SIGTERM/SIGINT or --max-runtime, 2 for a bad command
 * line or config (a config error is printed as "FILE:LINE: message"), 1 if
 * serving failed. */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ids.h"
#include "core/log.h"
#include "sim_server.h"

#define EXIT_USAGE 2

static sim_server *g_srv; /* for the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    if (g_srv)
        sim_server_request_stop(g_srv);
}

/* ---- values -------------------------------------------------------------- */

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *s)
{
    if (strlen(s) >= cap || !*s)
        return -1;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static sim_node_cfg *node_find(sim_server_cfg *c, const char *name)
{
    for (int i = 0; i < c->nnodes; i++)
        if (strcmp(c->nodes[i].name, name) == 0)
            return &c->nodes[i];
    return NULL;
}

/* Adds node `name` (validated); returns it, or NULL with a message. */
static sim_node_cfg *node_add(sim_server_cfg *c, const char *name, char *err,
                              size_t errlen)
{
    if (!ids_valid(name, sizeof c->nodes[0].name - 1)) {
        snprintf(err, errlen, "bad node name '%s' (1-31 of [A-Za-z0-9._-])", name);
        return NULL;
    }
    if (node_find(c, name)) {
        snprintf(err, errlen, "node '%s' defined twice", name);
        return NULL;
    }
    if (c->nnodes >= SIM_SERVER_MAX_NODES) {
        snprintf(err, errlen, "too many nodes (max %d)", SIM_SERVER_MAX_NODES);
        return NULL;
    }
    sim_node_cfg *n = &c->nodes[c->nnodes++];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    return n;
}

/* ---- the INI file -------------------------------------------------------- */

typedef struct ini_ctx {
    sim_server_cfg *cfg;
    FILE *f;
    int lineno;   /* the line inih is on (counted by our reader) */
    int err_line; /* first error */
    char err[256];
    int ref_line[SIM_SERVER_MAX_PEERS + SIM_SERVER_MAX_CONTEXTS]; /* node= lines */
} ini_ctx;

typedef int (*key_fn)(ini_ctx *x, const char *arg, const char *value);

static int bad(ini_ctx *x, const char *fmt, const char *a, const char *b)
{
    if (!x->err_line) {
        x->err_line = x->lineno;
        snprintf(x->err, sizeof x->err, fmt, a, b);
    }
    return 0;
}

static int k_scale(ini_ctx *x, const char *arg, const char *v)
{
    (void)arg;
    return parse_double(v, 0, 1000, &x->cfg->scale)
               ? bad(x, "scale: '%s' is not a number 0..1000%s", v, "")
               : 1;
}

static int k_user(ini_ctx *x, const char *arg, const char *v)
{
    (void)arg;
    return copy_str(x->cfg->user, sizeof x->cfg->user, v)
               ? bad(x, "user: bad value '%s'%s", v, "")
               : 1;
}

static int k_password(ini_ctx *x, const char *arg, const char *v)
{
    (void)arg;
    (void)v;
    return copy_str(x->cfg->password, sizeof x->cfg->password, v)
               ? bad(x, "password: empty or too long%s%s", "", "")
               : 1;
}

static int k_bind(ini_ctx *x, const char *arg, const char *v)
{
    (void)arg;
    return copy_str(x->cfg->bind, sizeof x->cfg->bind, v)
               ? bad(x, "bind: bad value '%s'%s", v, "")
               : 1;
}

static sim_node_cfg *section_node(ini_ctx *x, const char *name)
{
    sim_node_cfg *n = node_find(x->cfg, name);
    if (!n) {
        char err[200];
        n = node_add(x->cfg, name, err, sizeof err);
        if (!n)
            bad(x, "%s%s", err, "");
    }
    return n;
}

static int k_port(ini_ctx *x, const char *arg, const char *v)
{
    long port;
    sim_node_cfg *n = section_node(x, arg);
    if (!n)
        return 0;
    if (parse_long(v, 0, 65535, &port))
        return bad(x, "port: '%s' is not a port 0..65535%s", v, "");
    n->port = (int)port;
    return 1;
}

static int k_asterisk_id(ini_ctx *x, const char *arg, const char *v)
{
    sim_node_cfg *n = section_node(x, arg);
    if (!n)
        return 0;
    return copy_str(n->asterisk_id, sizeof n->asterisk_id, v)
               ? bad(x, "asterisk_id: bad value '%s'%s", v, "")
               : 1;
}

static sim_peer_cfg *section_peer(ini_ctx *x, const char *tp)
{
    sim_server_cfg *c = x->cfg;
    for (int i = 0; i < c->npeers; i++)
        if (strcmp(c->peers[i].tech_peer, tp) == 0)
            return &c->peers[i];
    if (c->npeers >= SIM_SERVER_MAX_PEERS || !strchr(tp, '/') ||
        copy_str(c->peers[c->npeers].tech_peer, sizeof c->peers[0].tech_peer, tp)) {
        bad(x, "peer '%s': expected TECH/PEER (and at most 64 peers)%s", tp, "");
        return NULL;
    }
    return &c->peers[c->npeers++];
}

static int k_peer_node(ini_ctx *x, const char *arg, const char *v)
{
    sim_peer_cfg *p = section_peer(x, arg);
    if (!p)
        return 0;
    if (copy_str(p->node, sizeof p->node, v))
        return bad(x, "node: bad value '%s'%s", v, "");
    x->ref_line[p - x->cfg->peers] = x->lineno;
    return 1;
}

/* [context NAME@NODE] */
static sim_context_cfg *section_context(ini_ctx *x, const char *arg)
{
    sim_server_cfg *c = x->cfg;
    const char *at = strchr(arg, '@');
    for (int i = 0; i < c->ncontexts; i++) {
        char key[100];
        snprintf(key, sizeof key, "%s@%s", c->contexts[i].context, c->contexts[i].node);
        if (strcmp(key, arg) == 0)
            return &c->contexts[i];
    }
    if (!at || at == arg || !at[1] || c->ncontexts >= SIM_SERVER_MAX_CONTEXTS ||
        (size_t)(at - arg) >= sizeof c->contexts[0].context ||
        copy_str(c->contexts[c->ncontexts].node, sizeof c->contexts[0].node, at + 1)) {
        bad(x, "context '%s': expected [context NAME@NODE]%s", arg, "");
        return NULL;
    }
    sim_context_cfg *k = &c->contexts[c->ncontexts++];
    memcpy(k->context, arg, (size_t)(at - arg));
    k->context[at - arg] = '\0';
    snprintf(k->args, sizeof k->args, "%s", "");
    x->ref_line[SIM_SERVER_MAX_PEERS + (k - c->contexts)] = x->lineno;
    return k;
}

static int k_ctx_app(ini_ctx *x, const char *arg, const char *v)
{
    sim_context_cfg *k = section_context(x, arg);
    if (!k)
        return 0;
    return copy_str(k->app, sizeof k->app, v) ? bad(x, "app: bad value '%s'%s", v, "")
                                              : 1;
}

static int k_ctx_args(ini_ctx *x, const char *arg, const char *v)
{
    sim_context_cfg *k = section_context(x, arg);
    if (!k)
        return 0;
    if (strlen(v) >= sizeof k->args)
        return bad(x, "args: longer than 127 bytes%s%s", "", "");
    snprintf(k->args, sizeof k->args, "%s", v);
    return 1;
}

/* Which keys each kind of section takes. */
static const struct {
    const char *section; /* "general", or the first word of "node NAME" */
    const char *key;
    key_fn fn;
} ini_keys[] = {
    {"general", "scale", k_scale},
    {"general", "user", k_user},
    {"general", "password", k_password},
    {"general", "bind", k_bind},
    {"node", "port", k_port},
    {"node", "asterisk_id", k_asterisk_id},
    {"peer", "node", k_peer_node},
    {"context", "app", k_ctx_app},
    {"context", "args", k_ctx_args},
};

static int on_ini_key(void *ud, const char *section, const char *name, const char *value)
{
    ini_ctx *x = ud;
    char kind[32] = "";
    const char *arg = "";
    const char *sp = strchr(section, ' ');
    size_t kl = sp ? (size_t)(sp - section) : strlen(section);
    if (kl < sizeof kind) {
        memcpy(kind, section, kl);
        kind[kl] = '\0';
    }
    if (sp)
        arg = sp + 1;
    if ((strcmp(kind, "general") == 0) != (*arg == '\0'))
        return bad(x,
                   "section [%s]: expected [general], [node NAME], [peer TECH/PEER] or "
                   "[context NAME@NODE]%s",
                   section, "");
    for (size_t i = 0; i < sizeof ini_keys / sizeof ini_keys[0]; i++)
        if (strcmp(ini_keys[i].section, kind) == 0 && strcmp(ini_keys[i].key, name) == 0)
            return ini_keys[i].fn(x, arg, value);
    return bad(x, "unknown key '%s' in [%s]", name, section);
}

static char *read_ini_line(char *str, int num, void *stream)
{
    ini_ctx *x = stream;
    char *r = fgets(str, num, x->f);
    if (r)
        x->lineno++;
    return r;
}

/* References are checked once the whole file is read: a peer may name a node
 * defined further down. */
static int ini_check_refs(ini_ctx *x)
{
    sim_server_cfg *c = x->cfg;
    for (int i = 0; i < c->npeers && !x->err_line; i++)
        if (!node_find(c, c->peers[i].node)) {
            x->lineno = x->ref_line[i];
            bad(x, "peer %s: unknown node '%s'", c->peers[i].tech_peer,
                c->peers[i].node[0] ? c->peers[i].node : "(none)");
        }
    for (int i = 0; i < c->ncontexts && !x->err_line; i++) {
        x->lineno = x->ref_line[SIM_SERVER_MAX_PEERS + i];
        if (!node_find(c, c->contexts[i].node))
            bad(x, "context %s: unknown node '%s'", c->contexts[i].context,
                c->contexts[i].node);
        else if (!c->contexts[i].app[0])
            bad(x, "context %s: app= is required%s", c->contexts[i].context, "");
    }
    return x->err_line ? -1 : 0;
}

/* Reads the file into x->cfg. Node references are checked later, by
 * ini_finish(), once the command line has added its nodes too. */
static int load_ini(const char *path, ini_ctx *x)
{
    x->f = fopen(path, "r");
    if (!x->f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = ini_parse_stream(read_ini_line, x, on_ini_key, x);
    fclose(x->f);
    x->f = NULL;
    if (rc > 0 && !x->err_line) {
        x->err_line = rc;
        snprintf(x->err, sizeof x->err, "syntax error");
    }
    if (rc < 0)
        fprintf(stderr, "%s: cannot read\n", path);
    return rc < 0 ? -1 : 0;
}

/* Prints the first error as FILE:LINE: message. */
static int ini_finish(const char *path, ini_ctx *x)
{
    if (!x->err_line)
        ini_check_refs(x);
    if (!x->err_line)
        return 0;
    fprintf(stderr, "%s:%d: %s\n", path, x->err_line, x->err);
    return -1;
}

/* ---- the command line ---------------------------------------------------- */

typedef struct opts {
    const char *config;
    const char *ready_file;
    long max_runtime;
    int ncli_nodes;
    const char *cli_nodes[SIM_SERVER_MAX_NODES];
    const char *scale, *user, *password, *bind;
    long ws_queue_max;
} opts;

static void usage(void)
{
    fprintf(stderr,
            "usage: asterisk-sim --node NAME:PORT [--node NAME:PORT ...] [--scale F]\n"
            "                    [--user U --password P] [--bind ADDR] [--config FILE]\n"
            "                    [--max-runtime SEC] [--ready-file PATH]\n"
            "                    [--ws-queue-max BYTES]  (default 64 MiB per events "
            "socket)\n");
}

static int parse_argv(int argc, char **argv, opts *o)
{
    static const struct option lo[] = {
        {"node", required_argument, NULL, 'n'},
        {"scale", required_argument, NULL, 's'},
        {"user", required_argument, NULL, 'u'},
        {"password", required_argument, NULL, 'p'},
        {"bind", required_argument, NULL, 'b'},
        {"config", required_argument, NULL, 'c'},
        {"max-runtime", required_argument, NULL, 'm'},
        {"ready-file", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {"ws-queue-max", required_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (o->ncli_nodes >= SIM_SERVER_MAX_NODES) {
                fprintf(stderr, "asterisk-sim: too many --node (max %d)\n",
                        SIM_SERVER_MAX_NODES);
                return -1;
            }
            o->cli_nodes[o->ncli_nodes++] = optarg;
            break;
        case 's':
            o->scale = optarg;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 'p':
            o->password = optarg;
            break;
        case 'b':
            o->bind = optarg;
            break;
        case 'c':
            o->config = optarg;
            break;
        case 'r':
            o->ready_file = optarg;
            break;
        case 'q':
            if (parse_long(optarg, 1024, 1L << 32, &o->ws_queue_max)) {
                fprintf(stderr,
                        "asterisk-sim: --ws-queue-max: '%s' is not 1024..4G bytes\n",
                        optarg);
                return -1;
            }
            break;
        case 'm':
            if (parse_long(optarg, 0, 86400 * 365, &o->max_runtime)) {
                fprintf(stderr,
                        "asterisk-sim: --max-runtime: '%s' is not a number of seconds\n",
                        optarg);
                return -1;
            }
            break;
        default:
            usage();
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "asterisk-sim: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* "NAME:PORT" */
static int add_cli_node(sim_server_cfg *cfg, const char *spec)
{
    char name[64], err[200];
    long port;
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof name ||
        parse_long(colon + 1, 0, 65535, &port)) {
        fprintf(stderr, "asterisk-sim: --node '%s': expected NAME:PORT\n", spec);
        return -1;
    }
    memcpy(name, spec, (size_t)(colon - spec));
    name[colon - spec] = '\0';
    sim_node_cfg *n = node_add(cfg, name, err, sizeof err);
    if (!n) {
        fprintf(stderr, "asterisk-sim: --node '%s': %s\n", spec, err);
        return -1;
    }
    n->port = (int)port;
    return 0;
}

/* Defaults, then the file, then the command line (which wins). */
static int build_cfg(const opts *o, sim_server_cfg *cfg, ini_ctx *x)
{
    memset(cfg, 0, sizeof *cfg);
    memset(x, 0, sizeof *x);
    x->cfg = cfg;
    snprintf(cfg->bind, sizeof cfg->bind, "127.0.0.1");
    snprintf(cfg->user, sizeof cfg->user, "ari");
    snprintf(cfg->password, sizeof cfg->password, "ari");
    cfg->scale = 1.0;
    cfg->ws_queue_max = o->ws_queue_max ? (size_t)o->ws_queue_max : 64u * 1024 * 1024;
    if (o->config && load_ini(o->config, x) != 0)
        return -1;
    if (o->scale && parse_double(o->scale, 0, 1000, &cfg->scale)) {
        fprintf(stderr, "asterisk-sim: --scale: '%s' is not a number 0..1000\n",
                o->scale);
        return -1;
    }
    if ((o->user && copy_str(cfg->user, sizeof cfg->user, o->user)) ||
        (o->password && copy_str(cfg->password, sizeof cfg->password, o->password)) ||
        (o->bind && copy_str(cfg->bind, sizeof cfg->bind, o->bind))) {
        fprintf(stderr, "asterisk-sim: --user/--password/--bind: empty or too long\n");
        return -1;
    }
    for (int i = 0; i < o->ncli_nodes; i++)
        if (add_cli_node(cfg, o->cli_nodes[i]) != 0)
            return -1;
    if (o->config && ini_finish(o->config, x) != 0)
        return -1;
    if (cfg->nnodes == 0) {
        fprintf(
            stderr,
            "asterisk-sim: no nodes: give --node NAME:PORT or [node NAME] sections\n");
        return -1;
    }
    return 0;
}

static void announce(const sim_server *srv, const char *ready_file)
{
    char line[1024];
    sim_server_ready_line(srv, line, sizeof line);
    printf("%s\n", line);
    fflush(stdout);
    if (!ready_file)
        return;
    /* written whole then renamed, so a reader never sees half a line */
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%s\n", line) < 0 || fclose(f) != 0 ||
        rename(tmp, ready_file) != 0)
        LOG_E("simhost", "ready file %s: %s", ready_file, strerror(errno));
}

int main(int argc, char **argv)
{
    opts o = {0};
    static sim_server_cfg cfg;
    static ini_ctx x;
    char err[256];
    log_init_from_env();
    if (parse_argv(argc, argv, &o) != 0 || build_cfg(&o, &cfg, &x) != 0)
        return EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    sim_server *srv = sim_server_new(&cfg, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "asterisk-sim: %s\n", err);
        return 1;
    }
    g_srv = srv;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    announce(srv, o.ready_file);
    int rc = sim_server_run(srv, (unsigned)o.max_runtime);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    g_srv = NULL;
    sim_server_free(srv);
    return rc == 0 ? 0 : 1;
}
