/* scratch_dir.c: the scratch directory the file-writing suites (io, plot) give each test. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scratch_dir.h"

static char dir[32];

void scratch_dir_make(void)
{
    strcpy(dir, "/tmp/tapegrad_test_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

char *scratch_path(char *buf, const char *name)
{
    snprintf(buf, PATH_SIZE, "%s/%s", dir, name);
    return buf;
}

int scratch_dir_list(char *names, size_t size)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int count = 0;
    names[0] = '\0';
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        count++;
        if (strlen(names) + strlen(e->d_name) + 2 <= size) {
            strcat(names, e->d_name);
            strcat(names, " ");
        }
    }
    closedir(d);
    return count;
}

void scratch_dir_remove(void)
{
    char names[4096], path[PATH_SIZE];
    scratch_dir_list(names, sizeof names);
    for (char *name = strtok(names, " "); name; name = strtok(NULL, " ")) {
        scratch_path(path, name);
        if (remove(path) != 0)
            rmdir(path);
    }
    rmdir(dir);
}

void scratch_dir_assert_holds(int want)
{
    char names[4096];
    int got = scratch_dir_list(names, sizeof names);
    ck_assert_msg(got == want, "%s holds %d files (%s), expected %d", dir, got, names, want);
}

void scratch_dir_assert_refused_rename(const char *path, const char *message)
{
    ck_assert_msg(strncmp(message, path, strlen(path)) == 0 &&
                      strstr(message, ": cannot move the new file into place: ") != NULL,
                  "message: %s", message);
    scratch_dir_assert_holds(1);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
}
