#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 64
static pid_t g_children[MAX_CHILDREN];
static int g_nchildren;
static bool g_atexit_done;

static void kill_all_children(void)
{
    for (int i = 0; i < g_nchildren; i++) {
        if (g_children[i] > 0) {
            kill(g_children[i], SIGKILL);
            waitpid(g_children[i], NULL, 0);
        }
    }
    g_nchildren = 0;
}

static void track(pid_t pid)
{
    if (!g_atexit_done) {
        atexit(kill_all_children);
        g_atexit_done = true;
    }
    for (int i = 0; i < g_nchildren; i++)
        if (g_children[i] == 0) {
            g_children[i] = pid;
            return;
        }
    if (g_nchildren < MAX_CHILDREN)
        g_children[g_nchildren++] = pid;
}

static void untrack(pid_t pid)
{
    for (int i = 0; i < g_nchildren; i++)
        if (g_children[i] == pid)
            g_children[i] = 0;
}

int proc_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("proc_free_port");
        abort();
    }
    close(fd);
    return ntohs(a.sin_port);
}

int proc_start(test_proc *p, const char *const argv[], const char *logpath)
{
    memset(p, 0, sizeof *p);
    const char *base = strrchr(argv[0], '/');
    snprintf(p->name, sizeof p->name, "%s", base ? base + 1 : argv[0]);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (logpath) {
            int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    track(pid);
    return 0;
}

bool proc_alive(const test_proc *p)
{
    if (p->pid <= 0)
        return false;
    return waitpid(p->pid, NULL, WNOHANG) == 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int proc_wait_port(const test_proc *p, int port, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return 0;
        if (p && !proc_alive(p))
            return -1;
        sleep_ms(10);
    }
    return -1;
}

int proc_stop(test_proc *p, int sig, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    int status = -1;
    kill(p->pid, sig);
    for (int waited = 0; waited <= timeout_ms; waited += 5) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            goto done;
        if (r < 0) {
            status = -1;
            goto done;
        }
        sleep_ms(5);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
done:
    untrack(p->pid);
    p->pid = 0;
    return status;
}

const char *proc_build_path(const char *rel, char *buf, unsigned long len)
{
    const char *b = getenv("ARIQ_BUILD_DIR");
    snprintf(buf, len, "%s/%s", b && *b ? b : ARIQ_BUILD_DIR, rel);
    return buf;
}

const char *proc_tmpdir(const char *test_name, char *buf, unsigned long len)
{
    char root[512];
    proc_build_path("test-tmp", root, sizeof root);
    mkdir(root, 0755);
    snprintf(buf, len, "%s/%s-%d", root, test_name, (int)getpid());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", buf);
    if (system(cmd) != 0) {
        /* nothing to remove is fine */
    }
    mkdir(buf, 0755);
    return buf;
}
