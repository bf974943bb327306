#include "replay.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int replay_file(const char *name, const char *path)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *p;
	long n;
	if (!fp) {
		fprintf(stderr, "%s: could not open \"%s\"\n", name, path);
		return -1;
	}
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	p = malloc(n > 0 ? (size_t)n : 1);
	if (!p || fread(p, 1, (size_t)n, fp) != (size_t)n) {
		fprintf(stderr, "%s: could not read \"%s\"\n", name, path);
		fclose(fp);
		free(p);
		return -1;
	}
	fclose(fp);
	LLVMFuzzerTestOneInput(p, (size_t)n);
	free(p);
	return 0;
}

int lh_fuzz_replay_main(int argc, char **argv, const char *name)
{
	int files = 0;
	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		DIR *d;
		struct dirent *de;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "%s: could not stat \"%s\"\n", name, argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (replay_file(name, argv[i]))
				return 1;
			files++;
			continue;
		}
		if (!(d = opendir(argv[i])))
			return 1;
		while ((de = readdir(d))) {
			char path[4096];
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			if (replay_file(name, path)) {
				closedir(d);
				return 1;
			}
			files++;
		}
		closedir(d);
	}
	printf("%s: replayed %d inputs\n", name, files);
	return files > 0 ? 0 : 1;
}
