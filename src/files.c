/* files.c: writing a file in one piece: into a temporary file next to the target, renamed
 * over it only once every byte is written, so a failed or interrupted save never destroys
 * the previous file. */
#include <errno.h>
#include <string.h>

#include "error.h"
#include "files.h"

/* "PATH: WHAT: REASON" in err, the reason from errno; returns -1. */
static int fail(tg_error *err, const char *path, const char *what, int error)
{
    return tg_error_set(err, path, "%s: %s", what,
                        error == ERANGE ? "path too long" : error ? strerror(error) : "unknown error");
}

/* Creates path.tmpN, with the first N from 0 whose file does not exist yet, for writing;
 * its name goes to name. NULL with errno set on failure (ERANGE: the name is too long). */
static FILE *open_temporary(const char *path, char *name, size_t size)
{
    for (int i = 0; i < 100; i++) {
        if ((size_t)snprintf(name, size, "%s.tmp%d", path, i) >= size) {
            errno = ERANGE;
            return NULL;
        }
        errno = 0;
        FILE *file = fopen(name, "wbx");
        if (file || errno != EEXIST)
            return file;
    }
    return NULL;
}

int tg_write_file_atomically(const char *path, bool (*write_body)(FILE *file, void *ctx), void *ctx,
                             tg_error *err)
{
    char name[FILENAME_MAX];
    FILE *file = open_temporary(path, name, sizeof name);
    if (!file)
        return fail(err, path, "cannot open for writing", errno);
    errno = 0;
    bool written = write_body(file, ctx);
    int error = errno;
    errno = 0;
    if (fclose(file) != 0 && written) {
        written = false;
        error = errno;
    }
    if (!written) {
        remove(name);
        return fail(err, path, "cannot write", error);
    }
    if (rename(name, path) != 0) {
        error = errno;
        remove(name);
        return fail(err, path, "cannot move the new file into place", error);
    }
    return 0;
}
