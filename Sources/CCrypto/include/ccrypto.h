// libcrypto (OpenSSL 3) for RS256 JWT signing; wrappers only for the macros Swift cannot import.
#ifndef WEIGHTFS_CCRYPTO_H
#define WEIGHTFS_CCRYPTO_H
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <stddef.h>

void wfs_openssl_free(void *p);
/// Copies the newest OpenSSL error string into buf (always NUL-terminated); returns its error code.
unsigned long wfs_openssl_last_error(char *buf, size_t len);
#endif
