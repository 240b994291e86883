package dev.weft.core;

/** Element types a tensor can be stored in. Compute is float32; bf16 is a storage type. */
public enum DType {
    F32(4, "F32"),
    BF16(2, "BF16");

    private final int bytes;
    private final String safetensorsName;

    DType(int bytes, String safetensorsName) {
        this.bytes = bytes;
        this.safetensorsName = safetensorsName;
    }

    public int bytes() {
        return bytes;
    }

    /** The dtype's name in the safetensors header ("F32", "BF16"). */
    public String safetensorsName() {
        return safetensorsName;
    }

    public static DType fromSafetensorsName(String name) {
        for (DType d : values()) {
            if (d.safetensorsName.equals(name)) return d;
        }
        throw new IllegalArgumentException("unsupported safetensors dtype '" + name + "' (weft reads F32 and BF16)");
    }

    /** Rounds a float to the nearest bf16 (round-to-nearest-even), returned as its 16 bits. */
    public static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) return (short) ((bits >>> 16) | 0x40); // keep NaN a quiet NaN
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    public static float fromBf16(short b) {
        return Float.intBitsToFloat((b & 0xffff) << 16);
    }
}
