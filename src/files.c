/* files.c: writing a file in one piece: into a temporary file next to the target, renamed
 * over it only once every byte is written, so a failed or interrupted save never destroys
 * the previous file. A symbolic link is written through (its final target is replaced, the
 * link stays), and a replaced file keeps its permissions. tg_write_text_file offers the same
 * to the user's own files. */
#define _POSIX_C_SOURCE 200809L /* lstat, readlink, open flags, fchmod, getpid */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "files.h"

#define LINKS_FOLLOWED 40      /* a longer chain of symbolic links is taken for a loop */
#define TEMPORARY_TRIES 100    /* names tried for the temporary file before giving up */

/* Numbers the temporary files of this process, so that no two saves (even from two threads)
 * try the same name. */
static atomic_uint temporaries_named;

/* "PATH: WHAT: REASON" in err, the reason from errno; returns -1. */
static int fail(tg_error *err, const char *path, const char *what, int error)
{
    return tg_error_set(err, path, "%s: %s", what, error ? strerror(error) : "unknown error");
}

/* Copies the n bytes at s, and a terminating zero, to out (size bytes) at offset at; false
 * with errno = ENAMETOOLONG when they do not fit. */
static bool copy_at(char *out, size_t size, size_t at, const char *s, size_t n)
{
    if (at + n >= size) {
        errno = ENAMETOOLONG;
        return false;
    }
    memcpy(out + at, s, n);
    out[at + n] = '\0';
    return true;
}

/* The file a save to path replaces, in target (size bytes): path itself, or where its chain
 * of symbolic links ends (each link read relative to its own directory), which need not
 * exist yet. False with errno set when a link cannot be read, the chain is too long, or the
 * name does not fit. */
static bool follow_links(const char *path, char *target, size_t size)
{
    if (!copy_at(target, size, 0, path, strlen(path)))
        return false;
    char link[FILENAME_MAX];
    for (int hops = 0;; hops++) {
        struct stat st;
        if (lstat(target, &st) != 0 || !S_ISLNK(st.st_mode))
            return true;   /* not a link: any error shows when the file is created */
        if (hops == LINKS_FOLLOWED) {
            errno = ELOOP;
            return false;
        }
        ssize_t n = readlink(target, link, sizeof link);
        if (n <= 0)
            return false;
        if ((size_t)n >= sizeof link) {
            errno = ENAMETOOLONG;
            return false;
        }
        const char *slash = strrchr(target, '/');
        size_t dir_len = link[0] != '/' && slash ? (size_t)(slash - target) + 1 : 0;
        if (!copy_at(target, size, dir_len, link, (size_t)n))
            return false;
    }
}

/* Creates a new file TARGET.tmp.PID.N for writing (never opening one that exists), its name
 * in name: with the permissions of old (the file it will replace) when there is one, else
 * 0666 less the umask, as any new file. Its descriptor, or -1 with errno set (EEXIST: the
 * last name tried, in name, exists). */
static int create_temporary(const char *target, const struct stat *old, char *name, size_t size)
{
    for (int i = 0; i < TEMPORARY_TRIES; i++) {
        unsigned n = atomic_fetch_add(&temporaries_named, 1u);
        if ((size_t)snprintf(name, size, "%s.tmp.%ld.%u", target, (long)getpid(), n) >= size) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, old ? 0600 : 0666);
        if (fd >= 0 && old && fchmod(fd, old->st_mode & 07777) != 0) {
            int error = errno;
            close(fd);
            unlink(name);
            errno = error;
            return -1;
        }
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* Writes the body into the temporary file behind fd, closes it, and moves it over target;
 * removes it on any failure. */
static int fill_and_rename(int fd, const char *name, const char *target,
                           bool (*write_body)(FILE *file, void *ctx), void *ctx, tg_error *err)
{
    FILE *file = fdopen(fd, "wb");
    if (!file) {
        int error = errno;
        close(fd);
        unlink(name);
        return fail(err, target, "cannot open for writing", error);
    }
    errno = 0;
    /* on the disk (fsync) before the rename makes it the file: a crash leaves old or new */
    bool written = write_body(file, ctx) && fflush(file) == 0 && fsync(fd) == 0;
    int error = errno;
    errno = 0;
    if (fclose(file) != 0 && written) {
        written = false;
        error = errno;
    }
    if (!written) {
        unlink(name);
        return fail(err, target, "cannot write", error);
    }
    if (rename(name, target) != 0) {
        error = errno;
        unlink(name);
        return fail(err, target, "cannot move the new file into place", error);
    }
    return 0;
}

int tg_write_file_atomically(const char *path, bool (*write_body)(FILE *file, void *ctx), void *ctx,
                             tg_error *err)
{
    char target[FILENAME_MAX], name[FILENAME_MAX];
    if (!follow_links(path, target, sizeof target))
        return fail(err, path, "cannot follow the symbolic link", errno);
    struct stat old;
    bool replacing = stat(target, &old) == 0 && S_ISREG(old.st_mode);
    int fd = create_temporary(target, replacing ? &old : NULL, name, sizeof name);
    if (fd < 0 && errno == EEXIST)
        return tg_error_set(err, name, "cannot create this temporary file for the save: File "
                            "exists (the last of %d names tried)", TEMPORARY_TRIES);
    if (fd < 0)
        return fail(err, target, "cannot open for writing", errno);
    return fill_and_rename(fd, name, target, write_body, ctx, err);
}

/* The bytes tg_write_text_file writes. */
typedef struct text_bytes {
    const char *bytes;
    size_t n;
} text_bytes;

static bool write_text_body(FILE *file, void *ctx)
{
    const text_bytes *t = ctx;
    return fwrite(t->bytes, 1, t->n, file) == t->n;
}

int tg_write_text_file(const char *path, const char *text, size_t n, tg_error *err)
{
    tg_error_clear(err);
    if (!path)
        return tg_error_set(err, "tg_write_text_file", "path is NULL");
    if (!text && n > 0)
        return tg_error_set(err, path, "text is NULL with n %zu", n);
    text_bytes t = { text, n };
    return tg_write_file_atomically(path, write_text_body, &t, err);
}
