package dev.weft.launcher;

import dev.weft.core.UserError;
import picocli.CommandLine;

/**
 * Turns an exception from a command into a clear one-paragraph error. Bad input (config, files,
 * budgets; see {@link UserError#isUserError}) is the user's to fix and gets its message alone;
 * anything else is a bug in weft and gets the stack trace too, so it can be reported.
 */
final class ErrorReport implements CommandLine.IExecutionExceptionHandler {
    @Override
    public int handleExecutionException(Exception e, CommandLine cmd, CommandLine.ParseResult parsed) {
        if (UserError.isUserError(e)) {
            cmd.getErr().println("weft " + cmd.getCommandName() + ": error: " + e.getMessage());
            return 2;
        }
        cmd.getErr().println("weft " + cmd.getCommandName() + ": internal error (please report): " + e);
        e.printStackTrace(cmd.getErr());
        return 1;
    }
}
