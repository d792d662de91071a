/* SPDX-License-Identifier: MIT */
/*
 * driver.c — run a fuzz harness without libFuzzer: the regression tests.
 *
 *   fuzz_NAME [FILE|DIR]...
 *
 * Runs LLVMFuzzerTestOneInput on the empty input (for the image harnesses:
 * the template as it is), then on each FILE and each file in each DIR. A file named
 * *.img is a whole image, used as it is; any other is an input as the
 * fuzzer gives it. A harness that finds a broken promise aborts, and so
 * does this program: meson test reports the input last named on stderr.
 * Exit status 0 when every input ran.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned runs;



static void run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t len = strlen(path), cap = 1 << 16, n = 0, got;
	uint8_t *buf = malloc(cap);

	if (!f || !buf) {
		fprintf(stderr, "fuzz driver: cannot read %s\n", path);
		exit(1);
	}
	while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap && !(buf = realloc(buf, cap *= 2))) {
			fprintf(stderr, "fuzz driver: out of memory\n");
			exit(1);
		}
	}
	fclose(f);
	fprintf(stderr, "fuzz driver: %s (%zu bytes)\n", path, n);
	fz_input_is_image = len > 4 && !strcmp(path + len - 4, ".img");
	LLVMFuzzerTestOneInput(buf, n);
	fz_input_is_image = false;
	free(buf);
	runs++;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void run_path(const char *path)
{
	struct dirent **list;
	struct stat st;
	char sub[4096];
	int n;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "fuzz driver: %s: not found\n", path);
		exit(1);
	}
	if (!S_ISDIR(st.st_mode)) {
		run_file(path);
		return;
	}
	n = scandir(path, &list, NULL, by_name);
	if (n < 0) {
		fprintf(stderr, "fuzz driver: cannot list %s\n", path);
		exit(1);
	}
	for (int i = 0; i < n; i++) {
		if (list[i]->d_name[0] != '.') {
			snprintf(sub, sizeof(sub), "%s/%s", path,
				 list[i]->d_name);
			run_file(sub);
		}
		free(list[i]);
	}
	free(list);
}

int main(int argc, char **argv)
{
	/* As libFuzzer does: never a null pointer, even for no bytes. */
	static const uint8_t nothing[1];

	LLVMFuzzerTestOneInput(nothing, 0);
	runs = 1;
	for (int i = 1; i < argc; i++)
		run_path(argv[i]);
	printf("%s: %u inputs ran\n", argv[0], runs);
	return 0;
}
