// Starting child processes for the tests and the bench without Foundation's Process: its Linux
// spawn lists /proc/self/fd to close descriptors and copies each entry's whole 256-byte name
// field, reading past the end of the directory buffer; in a test process that held 2,000 sockets
// that read faulted (CI, stop 19). posix_spawn with closefrom needs no listing at all.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>
#include "CProcessShim.h"

static int add_stream(posix_spawn_file_actions_t *actions, int fd, int target) {
    if (fd < 0) {
        return posix_spawn_file_actions_addopen(actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0);
    }
    // dup2 onto itself would keep close-on-exec set; the child must get the descriptor.
    if (fd == target) {
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) return errno;
        return 0;
    }
    return posix_spawn_file_actions_adddup2(actions, fd, target);
}

int sfs_spawn(const char *path, char *const argv[], char *const envp[], int in, int out, int err, pid_t *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attributes);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    if (rc == 0) rc = add_stream(&actions, in, 0);
    if (rc == 0) rc = add_stream(&actions, out, 1);
    if (rc == 0) rc = add_stream(&actions, err, 2);
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (rc == 0) rc = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (rc == 0) rc = posix_spawnattr_setpgroup(&attributes, 0);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attributes, &empty);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attributes, &defaults);
    if (rc == 0) rc = posix_spawn(pid, path, &actions, &attributes, argv, envp);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int sfs_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}
