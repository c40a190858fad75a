/* queue_log_file.c - the queue_log file: append + fsync, reopen, recovery.
 *
 * O_APPEND, so a line always lands at the end even if the file was
 * truncated under us (logrotate copytruncate). One write(2) per batch where
 * the kernel takes it whole; fsync before the batch counts as written. */
#include "queue_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"

#define MOD "queue_log"

struct qlog_file {
    int fd;
    char *path;
    char err[256];
};

static int fail(qlog_file *f, const char *what)
{
    snprintf(f->err, sizeof f->err, "%s %s: %s", what, f->path, strerror(errno));
    LOG_E(MOD, "%s", f->err);
    return ARIQ_EIO;
}

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int qlog_file_open(const char *path, qlog_file **out, char *err, size_t errlen)
{
    qlog_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return ARIQ_ENOMEM;
    }
    f->fd = open_path(path);
    if (f->fd < 0) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        free(f->path);
        free(f);
        return ARIQ_EIO;
    }
    *out = f;
    return 0;
}

void qlog_file_free(qlog_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    free(f->path);
    free(f);
}

int qlog_file_append_sync(qlog_file *f, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(f->fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail(f, "write");
        data += n;
        len -= (size_t)n;
    }
    if (fsync(f->fd) != 0)
        return fail(f, "fsync");
    return 0;
}

int qlog_file_reopen(qlog_file *f)
{
    int fd = open_path(f->path);
    if (fd < 0)
        return fail(f, "reopen");
    close(f->fd);
    f->fd = fd;
    return 0;
}

int qlog_file_stat(qlog_file *f, uint64_t *ino, uint64_t *size)
{
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return fail(f, "fstat");
    *ino = (uint64_t)st.st_ino;
    *size = (uint64_t)st.st_size;
    return 0;
}

/* The descriptor is write-only (O_APPEND); reads go through a second one on
 * the same open file, /proc/self/fd, so a renamed file is still the one
 * read. */
static int open_read(qlog_file *f)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", f->fd);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(f, "open for reading");
    return fd;
}

long qlog_file_cut_partial(qlog_file *f)
{
    uint64_t ino = 0, size = 0;
    if (qlog_file_stat(f, &ino, &size) != 0)
        return ARIQ_EIO;
    if (size == 0)
        return 0;
    int fd = open_read(f);
    if (fd < 0)
        return ARIQ_EIO;
    char buf[4096];
    uint64_t end = size, keep = 0;
    int found = 0;
    while (end > 0 && !found) { /* scan back for the last '\n' */
        size_t n = end < sizeof buf ? (size_t)end : sizeof buf;
        if (pread(fd, buf, n, (off_t)(end - n)) != (ssize_t)n) {
            close(fd);
            return fail(f, "read");
        }
        for (size_t i = n; i > 0; i--)
            if (buf[i - 1] == '\n') {
                keep = end - n + i;
                found = 1;
                break;
            }
        if (keep == size) /* ends with '\n' */
            break;
        end -= n;
    }
    close(fd);
    if (keep == size)
        return 0;
    if (ftruncate(f->fd, (off_t)keep) != 0 || fsync(f->fd) != 0)
        return fail(f, "truncate");
    LOG_W(MOD, "msg=\"cut a partial last line\" file=%s bytes=%llu", f->path,
          (unsigned long long)(size - keep));
    return (long)(size - keep);
}

long qlog_file_read_from(qlog_file *f, uint64_t from, size_t max, char **out)
{
    uint64_t ino = 0, size = 0;
    if (qlog_file_stat(f, &ino, &size) != 0)
        return ARIQ_EIO;
    size_t n = size > from ? (size_t)(size - from) : 0;
    if (n > max)
        return ARIQ_ERANGE;
    char *s = malloc(n + 1);
    if (!s)
        return ARIQ_ENOMEM;
    int fd = n ? open_read(f) : -1;
    if (n && fd < 0) {
        free(s);
        return ARIQ_EIO;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, s + got, n - got, (off_t)(from + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (fd >= 0)
        close(fd);
    s[got] = '\0';
    *out = s;
    return (long)got;
}

const char *qlog_file_errmsg(const qlog_file *f)
{
    return f->err;
}
