/* wallboard.c - the wallboard page and its assets (agentd/API.md
 * "Wallboard"): public routes, since they carry no data; the page reads the
 * API itself with the token from its URL fragment. The files live in
 * agentd/wallboard/ and are embedded at build time (wallboard/embed.cmake
 * generates wallboard_assets.c), so nothing is read from disk. */
#include "api_int.h"

#include <string.h>

extern const unsigned char wb_index_html[], wb_app_js[], wb_style_css[];
extern const size_t wb_index_html_len, wb_app_js_len, wb_style_css_len;

/* The page must not be framed by another site, and is cheap to re-send; no
 * cache so a new build's page and script always go together. */
static const char *const wb_headers[] = {
    "X-Content-Type-Options: nosniff",
    "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; "
    "frame-ancestors 'none'",
    NULL,
};

static void send_asset(http_req *r, const char *type, const unsigned char *b, size_t len)
{
    http_reply_ex(r, 200, type, (const char *)b, len, wb_headers);
}

static void get_page(api_ctx *a, http_req *r)
{
    (void)a;
    send_asset(r, "text/html; charset=utf-8", wb_index_html, wb_index_html_len);
}

static void get_script(api_ctx *a, http_req *r)
{
    (void)a;
    send_asset(r, "text/javascript; charset=utf-8", wb_app_js, wb_app_js_len);
}

static void get_style(api_ctx *a, http_req *r)
{
    (void)a;
    send_asset(r, "text/css; charset=utf-8", wb_style_css, wb_style_css_len);
}

const api_route api_wallboard_routes[] = {
    {"GET", "/wallboard", NULL, get_page, true},
    {"GET", "/wallboard/", NULL, get_page, true},
    {"GET", "/wallboard/app.js", NULL, get_script, true},
    {"GET", "/wallboard/style.css", NULL, get_style, true},
};
const size_t api_wallboard_nroutes = sizeof api_wallboard_routes / sizeof api_wallboard_routes[0];
