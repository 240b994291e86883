package dev.weft.trainer.data;

import java.nio.charset.StandardCharsets;

/** One token per UTF-8 byte. End-of-text is 0 (NUL), which real text does not contain. */
final class ByteTokenizer implements Tokenizer {
    static final String NAME = "byte";
    static final ByteTokenizer INSTANCE = new ByteTokenizer();

    private ByteTokenizer() {}

    @Override
    public int[] encode(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) ids[i] = bytes[i] & 0xFF;
        return ids;
    }

    @Override
    public String decode(int[] ids) {
        TokenIds.check(ids, 256, NAME);
        byte[] bytes = new byte[ids.length];
        for (int i = 0; i < ids.length; i++) bytes[i] = (byte) ids[i];
        return new String(bytes, StandardCharsets.UTF_8);
    }

    @Override public int vocabSize() { return 256; }
    @Override public int endOfText() { return 0; }
    @Override public String name() { return NAME; }
    @Override public String toString() { return NAME; }
}
