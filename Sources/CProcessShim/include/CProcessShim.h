#ifndef CPROCESSSHIM_H
#define CPROCESSSHIM_H
#include <sys/types.h>

/// Starts `path` (no PATH search) with `argv` and `envp` (both NULL-terminated) in a process
/// group of its own, with the default signal mask and a default SIGPIPE, as a shell would. Its
/// standard input, output and error are `in`, `out` and `err`, each /dev/null when -1. Every other
/// descriptor is closed in the child (closefrom 3), whatever its close-on-exec flag, and this
/// process's descriptors are never read or listed to do so. Returns 0 and sets `*pid`, or an
/// errno value.
int sfs_spawn(const char *path, char *const argv[], char *const envp[], int in, int out, int err, pid_t *pid);

/// pipe2(fds, O_CLOEXEC): 0, or -1 with errno.
int sfs_pipe_cloexec(int fds[2]);

#endif
