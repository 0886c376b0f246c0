/* Run a command with socket(2) limited to some address families, as systemd's
   RestrictAddressFamilies= does: any other family fails with EAFNOSUPPORT.
   Usage: restrict_af FAMILY[,FAMILY...] -- COMMAND [ARGS...]  (families as numbers) */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: %s FAMILY[,FAMILY...] -- COMMAND [ARGS...]\n", argv[0]);
        return 2;
    }
    long families[16];
    int n = 0;
    for (char *tok = strtok(argv[1], ","); tok && n < 16; tok = strtok(NULL, ","))
        families[n++] = strtol(tok, NULL, 10);
    struct sock_filter filter[64];
    int i = 0;
    filter[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                               offsetof(struct seccomp_data, nr));
    filter[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 1, 0);
    filter[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    filter[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                               offsetof(struct seccomp_data, args[0]));
    for (int f = 0; f < n; f++)
        filter[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                   (unsigned)families[f], n - f, 0);
    filter[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                               SECCOMP_RET_ERRNO | (EAFNOSUPPORT & 0xFFFF));
    filter[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {.len = (unsigned short)i, .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        perror("seccomp");
        return 1;
    }
    execvp(argv[3], argv + 3);
    perror("exec");
    return 127;
}
