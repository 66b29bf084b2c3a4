/* scratch_dir.h: a fresh directory under /tmp for each test that writes files (a Check
 * fixture: scratch_dir_make before, scratch_dir_remove after), and what it holds. */
#ifndef TAPEGRAD_TEST_SCRATCH_DIR_H
#define TAPEGRAD_TEST_SCRATCH_DIR_H

#include <stddef.h>

#define PATH_SIZE 256

void  scratch_dir_make(void);                          /* /tmp/tapegrad_test_XXXXXX */
void  scratch_dir_remove(void);                        /* its files and empty directories, then it */
char *scratch_path(char *buf, const char *name);       /* buf (PATH_SIZE bytes) = DIR/name */
/* The names in the directory (without . and ..), each followed by a space, as many as fit in
 * size; returns how many there are. */
int   scratch_dir_list(char *names, size_t size);
void  scratch_dir_assert_holds(int want);              /* fails the test unless it holds want names */
/* After a save to path, where a directory stands, failed: the message names path and the
 * failed move of the new file into place, and the directory holds only that directory. */
void  scratch_dir_assert_refused_rename(const char *path, const char *message);

#endif
