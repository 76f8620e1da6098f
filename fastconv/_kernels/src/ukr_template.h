/* Portable register-tile micro-kernel, written so that GCC vectorises the NR loop for
 * whatever target the including file enables.  Instantiate with UKR_T, UKR_MR, UKR_NR,
 * UKR_NAME.  This is also the readable reference every ISA kernel must agree with. */
static void UKR_NAME(fc_int k, const UKR_T *restrict a, const UKR_T *restrict b,
                     UKR_T *restrict c, fc_int ldc, int m, int n, UKR_T alpha, UKR_T beta)
{
    UKR_T acc[UKR_MR][UKR_NR];
    for (int i = 0; i < UKR_MR; i++)
        for (int j = 0; j < UKR_NR; j++) acc[i][j] = 0;
    for (fc_int p = 0; p < k; p++) {
        const UKR_T *ap = a + p * UKR_MR, *bp = b + p * UKR_NR;
        for (int i = 0; i < UKR_MR; i++) {
            UKR_T ai = ap[i];
            for (int j = 0; j < UKR_NR; j++) acc[i][j] += ai * bp[j];
        }
    }
    for (int i = 0; i < m; i++) {
        UKR_T *ci = c + i * ldc;
        if (beta == 0)
            for (int j = 0; j < n; j++) ci[j] = alpha * acc[i][j];
        else
            for (int j = 0; j < n; j++) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
}
