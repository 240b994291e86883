package dev.weft.trainer.data;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;

import java.nio.charset.StandardCharsets;

/** GPT-2's byte-pair encoding (r50k_base) through jtokkit. */
final class Gpt2Tokenizer implements Tokenizer {
    static final String NAME = "gpt2";
    static final Gpt2Tokenizer INSTANCE = new Gpt2Tokenizer();
    private static final int VOCAB = 50257;
    private static final int END_OF_TEXT = 50256;

    private final Encoding encoding = Encodings.newLazyEncodingRegistry().getEncoding(EncodingType.R50K_BASE);

    private Gpt2Tokenizer() {}

    @Override
    public int[] encode(String text) {
        // Ordinary encoding: a corpus that happens to contain "<|endoftext|>" must not fail or
        // silently gain document boundaries.
        return encoding.encodeOrdinary(text).toArray();
    }

    @Override
    public String decode(int[] ids) {
        TokenIds.check(ids, VOCAB, NAME);
        IntArrayList list = new IntArrayList(ids.length);
        for (int id : ids) list.add(id);
        // new String(bytes, UTF_8) replaces malformed sequences with U+FFFD rather than throwing.
        return new String(encoding.decodeBytes(list), StandardCharsets.UTF_8);
    }

    @Override public int vocabSize() { return VOCAB; }
    @Override public int endOfText() { return END_OF_TEXT; }
    @Override public String name() { return NAME; }
    @Override public String toString() { return NAME; }
}
