/* Preprocessed by build.rs (cc::Build::expand) to read httpd's module magic numbers. */
#include "ap_mmn.h"
OAUTH2_MMN_MAJOR MODULE_MAGIC_NUMBER_MAJOR
OAUTH2_MMN_MINOR MODULE_MAGIC_NUMBER_MINOR
OAUTH2_MMN_COOKIE MODULE_MAGIC_COOKIE
