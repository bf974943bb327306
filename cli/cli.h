/* cli.h — the command groups of lhctl; each returns the process exit status (common.h). argv[0]
 * is the group's name ("dev", "run", ...). */
#ifndef LHCTL_CLI_H
#define LHCTL_CLI_H

int lhctl_cmd_dev(int argc, char **argv);     /* dev.c */
int lhctl_cmd_run(int argc, char **argv);     /* run.c */
int lhctl_cmd_plan(int argc, char **argv);    /* plan.c */
int lhctl_cmd_events(int argc, char **argv);  /* events.c */
/* requests, approve, reject, respond, plan pause|resume|cancel|cancel-task (steer.c) */
int lhctl_cmd_steer(int argc, char **argv);
int lhctl_cmd_db(int argc, char **argv);      /* db.c */
int lhctl_cmd_token(int argc, char **argv);   /* token.c */
int lhctl_cmd_watch(int argc, char **argv);   /* watch.c */
int lhctl_cmd_version(int argc, char **argv); /* db.c */
int lhctl_cmd_memory(int argc, char **argv);  /* memory.c */

#endif
