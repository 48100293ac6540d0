/*
 * Small-packet UDP generator and sink for bench/udpFlood.ts (compiled there with Debian's gcc).
 *   udp-flood send DST PORT SECONDS PAYLOAD_BYTES   sends as fast as it can on one connected socket
 *                                                    (sendmmsg, batches of 64); prints packets sent,
 *                                                    seconds elapsed and its own CPU seconds
 *   udp-flood recv ADDR PORT                         binds, prints "ready", reads and discards forever
 * IPv4 only. A send error other than a full queue (ENOBUFS/EAGAIN) ends the run with exit 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* This process's CPU time, user + system: softirq work done on its send path is charged to it. */
static double cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int address(const char *ip, const char *port, struct sockaddr_in *sa) {
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((unsigned short)atoi(port));
    return inet_pton(AF_INET, ip, &sa->sin_addr) == 1 ? 0 : -1;
}

static int flood(const char *ip, const char *port, double seconds, int size) {
    struct sockaddr_in dst;
    static char payload[1500];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0 || address(ip, port, &dst) != 0 || size < 1 || size > (int)sizeof(payload)) return perror("setup"), 1;
    if (connect(s, (struct sockaddr *)&dst, sizeof(dst)) != 0) return perror("connect"), 1;
    memset(payload, 'x', sizeof(payload));
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = payload;
        iov[i].iov_len = (size_t)size;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned long long sent = 0;
    double start = now(), end = start + seconds, cpu0 = cpu();
    while (now() < end) {
        int n = sendmmsg(s, msgs, BATCH, 0);
        if (n > 0) sent += (unsigned long long)n;
        else if (n < 0 && errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED) return perror("sendmmsg"), 1;
    }
    printf("%llu %.6f %.6f\n", sent, now() - start, cpu() - cpu0);
    return 0;
}

static int sink(const char *ip, const char *port) {
    struct sockaddr_in at;
    static char bufs[BATCH][2048];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int rcvbuf = 4 << 20;
    if (s < 0 || address(ip, port, &at) != 0) return perror("setup"), 1;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (bind(s, (struct sockaddr *)&at, sizeof(at)) != 0) return perror("bind"), 1;
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = sizeof(bufs[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (;;)
        if (recvmmsg(s, msgs, BATCH, 0, NULL) < 0 && errno != EINTR) return perror("recvmmsg"), 1;
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "send") == 0) return flood(argv[2], argv[3], atof(argv[4]), atoi(argv[5]));
    if (argc == 4 && strcmp(argv[1], "recv") == 0) return sink(argv[2], argv[3]);
    fprintf(stderr, "usage: udp-flood send DST PORT SECONDS PAYLOAD_BYTES | recv ADDR PORT\n");
    return 2;
}
