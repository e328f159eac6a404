#include "ccrypto.h"

void wfs_openssl_free(void *p) { OPENSSL_free(p); }

unsigned long wfs_openssl_last_error(char *buf, size_t len) {
    unsigned long code = ERR_get_error();
    if (len > 0) {
        buf[0] = 0;
        if (code != 0) ERR_error_string_n(code, buf, len);
    }
    ERR_clear_error();
    return code;
}
