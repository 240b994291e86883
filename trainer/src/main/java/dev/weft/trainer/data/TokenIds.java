package dev.weft.trainer.data;

/** Range checks for token ids coming from outside (a model's output, a caller's array). */
final class TokenIds {
    private TokenIds() {}

    /** Throws unless every id is in {@code [0, vocab)}, naming the first one that is not. */
    static void check(int[] ids, int vocab, String tokenizer) {
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocab) {
                throw new IllegalArgumentException("token id " + ids[i] + " at position " + i
                        + " is outside the " + tokenizer + " vocabulary [0, " + vocab + ")");
            }
        }
    }
}
