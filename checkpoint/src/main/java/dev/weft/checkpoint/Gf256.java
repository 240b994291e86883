package dev.weft.checkpoint;

/**
 * Arithmetic in GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D) and generator 2,
 * the field most Reed-Solomon storage codes use. Addition is XOR; multiplication goes through
 * log/exp tables, and a full 256 x 256 product table serves the reference kernel.
 */
final class Gf256 {
    private static final int POLY = 0x11D;
    static final byte[] EXP = new byte[512];
    static final int[] LOG = new int[256];
    /** MUL[a << 8 | b] = a * b. */
    static final byte[] MUL = new byte[1 << 16];

    static {
        int x = 1;
        for (int i = 0; i < 255; i++) {
            EXP[i] = (byte) x;
            EXP[i + 255] = (byte) x;
            LOG[x] = i;
            x <<= 1;
            if ((x & 0x100) != 0) x ^= POLY;
        }
        EXP[510] = EXP[0];
        EXP[511] = EXP[1];
        for (int a = 0; a < 256; a++) for (int b = 0; b < 256; b++) MUL[a << 8 | b] = mulSlow(a, b);
    }

    private Gf256() {}

    private static byte mulSlow(int a, int b) {
        if (a == 0 || b == 0) return 0;
        return EXP[LOG[a] + LOG[b]];
    }

    static int mul(int a, int b) {
        return MUL[(a & 0xFF) << 8 | (b & 0xFF)] & 0xFF;
    }

    static int inv(int a) {
        if ((a & 0xFF) == 0) throw new ArithmeticException("0 has no inverse in GF(2^8)");
        return EXP[255 - LOG[a & 0xFF]] & 0xFF;
    }

    /** The inverse of a square matrix by Gauss-Jordan elimination; throws if it is singular. */
    static int[][] invert(int[][] a) {
        int n = a.length;
        int[][] m = new int[n][2 * n];
        for (int i = 0; i < n; i++) {
            System.arraycopy(a[i], 0, m[i], 0, n);
            m[i][n + i] = 1;
        }
        for (int col = 0; col < n; col++) {
            int pivot = col;
            while (pivot < n && m[pivot][col] == 0) pivot++;
            if (pivot == n) throw new ArithmeticException("singular matrix");
            int[] t = m[col]; m[col] = m[pivot]; m[pivot] = t;
            int s = inv(m[col][col]);
            for (int j = 0; j < 2 * n; j++) m[col][j] = mul(m[col][j], s);
            for (int r = 0; r < n; r++) {
                if (r == col || m[r][col] == 0) continue;
                int f = m[r][col];
                for (int j = 0; j < 2 * n; j++) m[r][j] ^= mul(f, m[col][j]);
            }
        }
        int[][] out = new int[n][n];
        for (int i = 0; i < n; i++) System.arraycopy(m[i], n, out[i], 0, n);
        return out;
    }

    static int[][] multiply(int[][] a, int[][] b) {
        int n = a.length, k = b.length, p = b[0].length;
        int[][] c = new int[n][p];
        for (int i = 0; i < n; i++)
            for (int t = 0; t < k; t++) {
                if (a[i][t] == 0) continue;
                for (int j = 0; j < p; j++) c[i][j] ^= mul(a[i][t], b[t][j]);
            }
        return c;
    }
}
