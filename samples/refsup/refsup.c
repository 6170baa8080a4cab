// refsup: the smallest seccomp user-notification supervisor that does what tsem's sensor must
// do at the least, as the reference `tsem bench run` measures tsem against.
//
//   refsup continue|emulate -- PROGRAM ARGS...
//
// It notifies open, openat, creat, execve and every mmap of a descriptor (what the sample C
// build's ~760 notifications are), with two notification threads blocking in RECV and
// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, as tsem does. `continue` answers every notification with
// CONTINUE: the floor of interception. `emulate` also performs every open in the supervisor and
// hands the file back with SECCOMP_IOCTL_NOTIF_ADDFD | SECCOMP_ADDFD_FLAG_SEND, which an
// enforcing sensor must do (a continued open would let the kernel resolve the path again after
// the verdict): the floor of emulation. It describes nothing, decides nothing, does not trace,
// performs opens with its own credentials, and continues what it cannot emulate (a relative
// path under a directory descriptor, O_PATH). It is a measuring instrument, not a sandbox.
// On exit it prints its counts to stderr: "refsup: N notifications, E opens emulated".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif

static int emulate;
static int listener;
static atomic_ulong notifications, emulated;

static void answer(struct seccomp_notif *req, int error, int cont) {
  struct seccomp_notif_resp resp = {0};
  resp.id = req->id;
  resp.error = error;
  resp.flags = cont ? SECCOMP_USER_NOTIF_FLAG_CONTINUE : 0;
  ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

// The task's umask, which a created file's mode must honour (the supervisor's is 0).
static mode_t task_umask(pid_t pid) {
  char p[64], buf[4096];
  snprintf(p, sizeof p, "/proc/%d/status", pid);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 022;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 022;
  buf[n] = 0;
  char *u = strstr(buf, "\nUmask:");
  return u ? (mode_t)strtoul(u + 7, NULL, 8) : 022;
}

// Perform the open `req` asks for and hand the file over; 0 when it cannot be emulated.
static int emulate_open(struct seccomp_notif *req) {
  int nr = req->data.nr;
  unsigned long long path_at = nr == SYS_openat ? req->data.args[1] : req->data.args[0];
  int flags = nr == SYS_creat    ? O_CREAT | O_WRONLY | O_TRUNC
              : nr == SYS_openat ? (int)req->data.args[2]
                                 : (int)req->data.args[1];
  mode_t mode = nr == SYS_creat    ? (mode_t)req->data.args[1]
                : nr == SYS_openat ? (mode_t)req->data.args[3]
                                   : (mode_t)req->data.args[2];
  int dirfd = nr == SYS_openat ? (int)req->data.args[0] : AT_FDCWD;
  char path[4096];
  struct iovec local = {path, sizeof path}, remote = {(void *)path_at, sizeof path};
  ssize_t n = process_vm_readv(req->pid, &local, 1, &remote, 1, 0);
  if (n <= 0 || !memchr(path, 0, n) || (flags & O_PATH)) return 0;
  if (path[0] != '/' && dirfd != AT_FDCWD) return 0;
  int dir = AT_FDCWD;
  if (path[0] != '/') {
    char cwd[64];
    snprintf(cwd, sizeof cwd, "/proc/%d/cwd", req->pid);
    dir = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return 0;
  }
  if (flags & (O_CREAT | O_TMPFILE)) mode &= ~task_umask(req->pid);
  int fd = openat(dir, path, flags | O_CLOEXEC, mode);
  int err = errno;
  if (dir != AT_FDCWD) close(dir);
  if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
    if (fd >= 0) close(fd);
    return 1;
  }
  if (fd < 0) {
    answer(req, -err, 0);
    return 1;
  }
  struct seccomp_notif_addfd add = {0};
  add.id = req->id;
  add.flags = SECCOMP_ADDFD_FLAG_SEND;
  add.srcfd = fd;
  add.newfd_flags = (flags & O_CLOEXEC) ? O_CLOEXEC : 0;
  ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add);
  close(fd);
  atomic_fetch_add(&emulated, 1);
  return 1;
}

static void *worker(void *unused) {
  (void)unused;
  for (;;) {
    struct seccomp_notif req = {0};
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
      if (errno == EINTR) continue;
      return NULL;
    }
    atomic_fetch_add(&notifications, 1);
    int nr = req.data.nr;
    int is_open = nr == SYS_open || nr == SYS_openat || nr == SYS_creat;
    if (!(emulate && is_open && emulate_open(&req))) answer(&req, 0, 1);
  }
}

// A one-byte message with room for one descriptor.
static struct msghdr one_fd_msg(struct iovec *io, char *byte, char *buf, size_t len) {
  io->iov_base = byte;
  io->iov_len = 1;
  struct msghdr m = {0};
  m.msg_iov = io;
  m.msg_iovlen = 1;
  m.msg_control = buf;
  m.msg_controllen = len;
  return m;
}

static void send_fd(int sock, int fd) {
  char buf[CMSG_SPACE(sizeof(int))] = {0}, c = 'l';
  struct iovec io;
  struct msghdr m = one_fd_msg(&io, &c, buf, sizeof buf);
  struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  if (sendmsg(sock, &m, 0) != 1) _exit(126);
}

static int recv_fd(int sock) {
  char buf[CMSG_SPACE(sizeof(int))], c;
  struct iovec io;
  struct msghdr m = one_fd_msg(&io, &c, buf, sizeof buf);
  if (recvmsg(sock, &m, 0) != 1 || !CMSG_FIRSTHDR(&m)) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
  return fd;
}

static void child(int sock, char **argv) {
  // Notify open, openat, creat, execve and an mmap without MAP_ANONYMOUS; allow the rest.
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_open, 6, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 5, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_creat, 4, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execve, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 1),
      BPF_JUMP(BPF_JMP | BPF_JA, 2, 0, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3])),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x20 /* MAP_ANONYMOUS */, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
  };
  struct sock_fprog prog = {sizeof f / sizeof f[0], f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) _exit(126);
  int l = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  if (l < 0) _exit(126);
  send_fd(sock, l);
  close(l);
  char go;
  if (read(sock, &go, 1) != 1) _exit(126);
  close(sock);
  execvp(argv[0], argv);
  _exit(127);
}

int main(int argc, char **argv) {
  if (argc < 4 || strcmp(argv[2], "--") || (strcmp(argv[1], "continue") && strcmp(argv[1], "emulate"))) {
    fprintf(stderr, "usage: refsup continue|emulate -- PROGRAM ARGS...\n");
    return 2;
  }
  emulate = !strcmp(argv[1], "emulate");
  umask(0);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return 125;
  pid_t pid = fork();
  if (pid < 0) return 125;
  if (pid == 0) {
    umask(022);
    close(sv[0]);
    child(sv[1], argv + 3);
  }
  close(sv[1]);
  listener = recv_fd(sv[0]);
  if (listener < 0) return 125;
  __u64 sync_wake = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
  ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, sync_wake);
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    if (pthread_create(&t[i], NULL, worker, NULL)) return 125;
  if (write(sv[0], "g", 1) != 1) return 125;
  int st;
  if (waitpid(pid, &st, 0) < 0) return 125;
  fprintf(stderr, "refsup: %lu notifications, %lu opens emulated\n", atomic_load(&notifications),
          atomic_load(&emulated));
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
