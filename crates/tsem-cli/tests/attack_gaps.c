/* Attacks on the gaps of issue 9, classes 5-8, for tests/attack_gaps.rs. Each mode has a
 * benign variant the model is learned from and an attack variant run under --enforce; the test
 * judges the attack by its effect (what this program prints, what it creates, what a listener
 * outside the run receives). Failures of single calls are reported, never fatal. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *what, long r) {
    printf("%s=%ld errno=%d\n", what, r, r < 0 ? errno : 0);
}

static void print_fd(const char *tag, int fd) {
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n < 0) n = read(fd, buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = 0;
        printf("%s:%s\n", tag, buf);
    } else {
        report(tag, n);
    }
}

static struct sockaddr_in lo(int port) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* --- class 5: relative AF_UNIX connect with a flipping address buffer --------------------- */
static struct sockaddr_un flip_addr;
static const char *flip_a, *flip_b;
static volatile int flipping = 1;
static volatile long flips;
static void *flipper(void *x) {
    (void)x;
    while (flipping) {
        strcpy(flip_addr.sun_path, flip_b);
        strcpy(flip_addr.sun_path, flip_a);
        flips++;
    }
    return NULL;
}

/* One connect per child: a child whose check saw the other address is marked untrusted, its
 * siblings are not, so the race gets many fresh tries. */
static int unix_connects(const char *good, const char *evil, int n) {
    int ok = 0;
    for (int i = 0; i < n; i++) {
        pid_t c = fork();
        if (c == 0) {
            pthread_t t;
            flip_addr.sun_family = AF_UNIX;
            strcpy(flip_addr.sun_path, good);
            flip_a = good;
            flip_b = evil;
            if (evil) {
                pthread_create(&t, NULL, flipper, NULL);
                /* Connect only once the flipper runs: on a loaded machine a thread not yet
                 * scheduled would leave every try with the good address and nothing to catch. */
                while (flips < 1000) sched_yield();
            }
            int s = socket(AF_UNIX, SOCK_STREAM, 0);
            int r = connect(s, (struct sockaddr *)&flip_addr, sizeof flip_addr);
            _exit(r == 0 ? 0 : 1);
        }
        int st = 0;
        waitpid(c, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
    }
    printf("connected=%d\n", ok);
    return 0;
}

/* --- class 7: a server outside the run that passes a descriptor when asked ---------------- */
static int serve(const char *path, const char *secret, int rounds) {
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, path);
    unlink(path);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4)) return 1;
    printf("ready\n");
    fflush(stdout);
    for (int i = 0; i < rounds; i++) {
        int c = accept(l, NULL, NULL);
        char q = 0;
        if (read(c, &q, 1) != 1) { close(c); continue; }
        int fd = open(secret, O_RDONLY);
        char byte = 'x';
        struct iovec iov = {&byte, 1};
        union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        if (q == 'A') {
            m.msg_control = u.b;
            m.msg_controllen = sizeof u.b;
            struct cmsghdr *h = CMSG_FIRSTHDR(&m);
            h->cmsg_level = SOL_SOCKET;
            h->cmsg_type = SCM_RIGHTS;
            h->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(h), &fd, sizeof fd);
        }
        sendmsg(c, &m, 0);
        close(fd);
        close(c);
    }
    return 0;
}

static int fetch(const char *path, char q) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, path);
    if (connect(s, (struct sockaddr *)&a, sizeof a)) { report("connect", -1); return 0; }
    write(s, &q, 1);
    char byte;
    struct iovec iov = {&byte, 1};
    union { struct cmsghdr h; char b[CMSG_SPACE(4 * sizeof(int))]; } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                       .msg_controllen = sizeof u.b};
    long r = recvmsg(s, &m, 0);
    report("recvmsg", r);
    printf("ctrunc=%d\n", !!(m.msg_flags & MSG_CTRUNC));
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
            int fd;
            memcpy(&fd, CMSG_DATA(h), sizeof fd);
            print_fd("RECEIVED", fd);
        }
    }
    return 0;
}

/* --- class 8: contents ----------------------------------------------------------------- */
static int memfd_exec(int attack, int seal) {
    /* Both programs are opened in both variants: only the memfd's contents differ. */
    int benign = open("/bin/true", O_RDONLY);
    int evil = open("./attack", O_RDONLY);
    int src = attack ? evil : benign;
    int m = syscall(SYS_memfd_create, "tool", MFD_ALLOW_SEALING);
    char buf[65536];
    ssize_t n;
    while ((n = read(src, buf, sizeof buf)) > 0) write(m, buf, n);
    if (seal)
        report("seal", fcntl(m, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW));
    char *argv[] = {"tool", "marker", NULL};
    char *envp[] = {NULL};
    syscall(SYS_execveat, m, "", argv, envp, AT_EMPTY_PATH);
    report("execveat", -1);
    return 0;
}

static int stale_conf(int attack) {
    int fd = open("conf.txt", O_RDWR);
    char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { report("mmap", -1); return 0; }
    close(fd);
    /* The first store dirties the page and moves mtime; later ones do not. */
    ((volatile char *)p)[0] = p[0];
    int r = open("conf.txt", O_RDONLY);
    print_fd("FIRST", r);
    close(r);
    memcpy(p, attack ? "level=9" : "level=1", 7);
    r = open("conf.txt", O_RDONLY);
    if (r < 0) report("reopen", -1);
    else print_fd("CONF", r);
    return 0;
}

typedef int (*fn_t)(void);
static int code_rewrite(int attack, int write_first) {
    static const unsigned char one[] = {0xb8, 0x01, 0, 0, 0, 0xc3};
    static const unsigned char answer[] = {0xb8, 0x2a, 0, 0, 0, 0xc3};
    int w = -1;
    if (write_first) {
        w = open("code.bin", O_RDWR);
        report("open_rw", w);
    }
    int fd = open("code.bin", O_RDONLY);
    void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) { report("mmap_exec", -1); return 0; }
    if (!write_first) {
        w = open("code.bin", O_RDWR);
        report("open_rw", w);
    }
    if (w >= 0) pwrite(w, attack ? answer : one, 6, 0);
    int r = ((fn_t)p)();
    printf("result=%d\n", r);
    if (r == 42) printf("MARKER-CODE\n");
    return 0;
}

static void on_alarm(int sig) { (void)sig; }

/* A receive the supervisor waits for keeps the native semantics: a handled signal without
 * SA_RESTART ends it with EINTR, SO_RCVTIMEO with EAGAIN. */
static int recv_wait(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    char b[8];
    struct iovec iov = {b, sizeof b};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    report("recv_signal", recvmsg(sv[1], &m, 0));
    struct timeval tv = {0, 200000};
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    report("recv_timeout", recvmsg(sv[1], &m, 0));
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : "";
    if (!strcmp(mode, "marker")) { printf("MARKER-RAN\n"); return 0; }
    if (!strcmp(mode, "none")) return 0;
    if (!strcmp(mode, "creat")) {
        int fd = open(arg, O_CREAT | O_WRONLY, 0644);
        report("creat", fd);
        if (fd >= 0) write(fd, "PWNED\n", 6);
        return 0;
    }
    if (!strcmp(mode, "link_fd")) {
        int fd = open("data.txt", O_RDONLY);
        report("open", fd);
        if (strcmp(arg, "attack")) return 0;
        report("linkat_empty", linkat(fd, "", AT_FDCWD, "outside/by_fd", AT_EMPTY_PATH));
        char p[64];
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        report("linkat_proc", linkat(AT_FDCWD, p, AT_FDCWD, "outside/by_proc",
                                     AT_SYMLINK_FOLLOW));
        return 0;
    }
    if (!strcmp(mode, "unix")) return unix_connects(arg, argc > 3 ? argv[3] : NULL, 60);
    if (!strcmp(mode, "udp") || !strcmp(mode, "udp_msg") || !strcmp(mode, "tfo")) {
        struct sockaddr_in a = lo(atoi(arg));
        const char *msg = "SECRET-NET";
        long r;
        if (!strcmp(mode, "tfo")) {
            int s = socket(AF_INET, SOCK_STREAM, 0);
            r = sendto(s, msg, strlen(msg), MSG_FASTOPEN, (struct sockaddr *)&a, sizeof a);
        } else if (!strcmp(mode, "udp")) {
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            r = sendto(s, msg, strlen(msg), 0, (struct sockaddr *)&a, sizeof a);
        } else {
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            struct iovec iov = {(void *)msg, strlen(msg)};
            struct msghdr m = {.msg_name = &a, .msg_namelen = sizeof a, .msg_iov = &iov,
                               .msg_iovlen = 1};
            r = sendmsg(s, &m, 0);
        }
        report(mode, r);
        return 0;
    }
    if (!strcmp(mode, "shm")) {
        int id = shmget(atoi(arg), 0, 0);
        report("shmget", id);
        if (id >= 0) {
            char *p = shmat(id, NULL, SHM_RDONLY);
            if (p != (void *)-1) printf("SHM:%s\n", p);
        }
        return 0;
    }
    if (!strcmp(mode, "keys")) {
        long id = syscall(SYS_request_key, "user", arg, NULL, 0);
        report("request_key", id);
        char buf[128] = {0};
        long n = syscall(SYS_keyctl, 11 /* KEYCTL_READ */, id, buf, sizeof buf - 1);
        report("keyctl_read", n);
        if (n > 0) printf("KEY:%s\n", buf);
        long k = syscall(SYS_add_key, "user", "tsem-planted", "x", 1, -3 /* session */);
        report("add_key", k);
        union bpf_attr at = {0};
        at.map_type = BPF_MAP_TYPE_ARRAY;
        at.key_size = 4;
        at.value_size = 4;
        at.max_entries = 1;
        long b = syscall(SYS_bpf, BPF_MAP_CREATE, &at, sizeof at);
        report("bpf", b);
        if (b >= 0) printf("BPF-OK\n");
        return 0;
    }
    if (!strcmp(mode, "serve")) return serve(arg, argv[3], atoi(argv[4]));
    if (!strcmp(mode, "fetch")) return fetch(arg, argv[3][0]);
    if (!strcmp(mode, "recv_wait")) return recv_wait();
    if (!strcmp(mode, "pass_fd")) {
        /* Inside the workload: a child passes an open file to its parent. */
        int sv[2];
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        if (fork() == 0) {
            int fd = open("data.txt", O_RDONLY);
            char byte = 'x';
            struct iovec iov = {&byte, 1};
            union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
            struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                               .msg_controllen = sizeof u.b};
            struct cmsghdr *h = CMSG_FIRSTHDR(&m);
            h->cmsg_level = SOL_SOCKET;
            h->cmsg_type = SCM_RIGHTS;
            h->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(h), &fd, sizeof fd);
            report("sendmsg", sendmsg(sv[0], &m, 0));
            _exit(0);
        }
        char byte;
        struct iovec iov = {&byte, 1};
        union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                           .msg_controllen = sizeof u.b};
        report("recvmsg", recvmsg(sv[1], &m, 0));
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        if (h && h->cmsg_type == SCM_RIGHTS) {
            int fd;
            memcpy(&fd, CMSG_DATA(h), sizeof fd);
            print_fd("PASSED", fd);
        }
        wait(NULL);
        return 0;
    }
    if (!strcmp(mode, "big_send")) {
        /* A blocking stream send larger than the socket buffer: all of it arrives. */
        int sv[2];
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        static char big[1 << 20];
        memset(big, 'b', sizeof big);
        if (fork() == 0) {
            close(sv[0]);
            long total = 0, n;
            char buf[65536];
            while ((n = read(sv[1], buf, sizeof buf)) > 0) total += n;
            printf("read_total=%ld\n", total);
            _exit(0);
        }
        close(sv[1]);
        struct iovec iov = {big, sizeof big};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        report("big_sendmsg", sendmsg(sv[0], &m, 0));
        close(sv[0]);
        wait(NULL);
        return 0;
    }
    if (!strcmp(mode, "rw_open")) {
        close(open("data.txt", O_RDWR));
        print_fd("DATA", open("data.txt", O_RDONLY));
        return 0;
    }
    if (!strcmp(mode, "inherited")) { print_fd("INHERITED", 3); return 0; }
    if (!strcmp(mode, "memfd")) return memfd_exec(strcmp(arg, "benign") != 0, strcmp(arg, "unsealed") != 0);
    if (!strcmp(mode, "stale")) return stale_conf(!strcmp(arg, "attack"));
    if (!strcmp(mode, "code")) return code_rewrite(!strcmp(arg, "attack"), argc > 3);
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
