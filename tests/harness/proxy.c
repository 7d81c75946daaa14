/* The freezing TCP proxy (see proxy.h). */
#include "harness/proxy.h"

#include "harness/runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct harness_proxy {
    int listen_fd, port, upstream_port;
    atomic_bool frozen, stop;
    pthread_t thread;
};

static void pump(int from, int to)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof buf);
    if (n > 0 && write(to, buf, (size_t)n) != n)
        return;
}

static void *proxy_main(void *arg)
{
    harness_proxy *p = arg;
    struct pollfd lp = {p->listen_fd, POLLIN, 0};
    while (!atomic_load(&p->stop) && poll(&lp, 1, 50) <= 0)
        ;
    if (atomic_load(&p->stop))
        return NULL;
    int c = accept(p->listen_fd, NULL, NULL);
    int u = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->upstream_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c >= 0 && u >= 0 && connect(u, (struct sockaddr *)&a, sizeof a) == 0) {
        while (!atomic_load(&p->stop)) {
            if (atomic_load(&p->frozen)) {
                usleep(20000);
                continue;
            }
            struct pollfd fds[2] = {{c, POLLIN, 0}, {u, POLLIN, 0}};
            if (poll(fds, 2, 20) <= 0)
                continue;
            if (fds[0].revents & POLLIN)
                pump(c, u);
            if (fds[1].revents & POLLIN)
                pump(u, c);
        }
    }
    if (c >= 0)
        close(c);
    if (u >= 0)
        close(u);
    return NULL;
}

static void proxy_stop(void *arg)
{
    harness_proxy *p = arg;
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    free(p);
}

harness_proxy *harness_proxy_start(int upstream_port)
{
    harness_proxy *p = calloc(1, sizeof *p);
    p->upstream_port = upstream_port;
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->listen_fd, 1) != 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&a, &alen) != 0) {
        close(p->listen_fd);
        free(p);
        unit_fail(__FILE__, __LINE__, "proxy: cannot listen on loopback");
    }
    p->port = ntohs(a.sin_port);
    pthread_create(&p->thread, NULL, proxy_main, p);
    unit_defer(proxy_stop, p);
    return p;
}

int harness_proxy_port(const harness_proxy *p)
{
    return p->port;
}

void harness_proxy_freeze(harness_proxy *p)
{
    atomic_store(&p->frozen, true);
}
