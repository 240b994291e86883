package dev.weft.parallel;

/** How a reduction combines the ranks' values, element by element. */
public enum ReduceOp {
    SUM, AVG, MAX, MIN
}
