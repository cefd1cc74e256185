/* test-suite/unit/run_unit.c - runs every Check suite (one check_<module>.c
 * each, defining `Suite *check_<module>_suite(void)`); the list is generated
 * by the Makefile from the file names. */
#include <check.h>
#include <stdlib.h>

#define SUITE(name) Suite *name##_suite(void);
#include "test-suite/unit/suites.h"
#undef SUITE

int main(void) {
  SRunner *sr = srunner_create(NULL);
#define SUITE(name) srunner_add_suite(sr, name##_suite());
#include "test-suite/unit/suites.h"
#undef SUITE
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
