using System;
using System.Collections.Generic;
using RwSplit.Routing;

namespace RwSplit.PostgreSql;

/// <summary>
/// Classifies PostgreSQL command text for read/write routing with a small single-pass lexer and a few keyword rules.
/// It fails closed: whatever it cannot prove to be a read is <see cref="StatementKind.Unknown"/> or
/// <see cref="StatementKind.Write"/>, and it never throws.
/// </summary>
/// <remarks>
/// Strings are lexed as with <c>standard_conforming_strings = on</c> (the server default since 9.1; PostgreSQL 19
/// removes <c>off</c>): a backslash escapes only inside <c>E'...'</c>. On a server still running with <c>off</c>, a
/// crafted text could be read differently; a write misread as a read is then refused by the read-only replica and
/// retried on the primary.
/// </remarks>
internal static partial class PgStatementClassifier
{
    private const int MaxKeywordLength = 24;
    private const string TemporaryTable = "temporary table";
    private const string TemporaryObject = "temporary object";
    private const string TransactionControl = "transaction control";
    private const string Cursor = "cursor";
    private const string PreparedStatement = "prepared statement";
    private const string StrongIsolation = "isolation stronger than read committed";
    private const string NotificationListener = "notification listener";
    private const string SequenceAccess = "sequence access";
    private const string AdvisoryLock = "advisory lock";
    private const string SetConfig = "set_config changes session settings";
    private const string DataModifyingWith = "data-modifying WITH query";
    private const string SelectInto = "SELECT INTO";
    private const string Unrecognised = "unrecognised statement";
    private const string UnbalancedParentheses = "unbalanced parentheses";
    private const string MixedSessionCommand = "session command mixed with other statements";

    private static readonly StatementClassification EmptyText = new(StatementKind.Unknown, detail: "empty statement");
    private static readonly StatementClassification UnterminatedString = new(StatementKind.Unknown, detail: "unterminated string literal");
    private static readonly StatementClassification UnterminatedQuotedIdentifier = new(StatementKind.Unknown, detail: "unterminated quoted identifier");
    private static readonly StatementClassification UnterminatedComment = new(StatementKind.Unknown, detail: "unterminated block comment");
    private static readonly StatementClassification UnterminatedDollarQuote = new(StatementKind.Unknown, detail: "unterminated dollar-quoted string");

    /// <summary>Classifies a command text that may hold several statements separated by <c>;</c>.</summary>
    /// <param name="commandText">The SQL text.</param>
    /// <returns>The combined classification of all statements of the text.</returns>
    public static StatementClassification Classify(string commandText)
    {
        if (string.IsNullOrEmpty(commandText))
        {
            return EmptyText;
        }

        var lexer = new Lexer(commandText);
        var batch = default(CombinedVerdict);
        List<string>? functions = null;
        while (true)
        {
            Token token = lexer.Next();
            if (token.Kind == TokenKind.End)
            {
                break;
            }

            if (token.Kind == TokenKind.Semicolon)
            {
                continue; // an empty statement
            }

            Verdict statement = token.Kind == TokenKind.Error
                ? default
                : ClassifyStatement(ref lexer, token, ref functions, nested: false);
            if (lexer.Error != LexError.None)
            {
                return lexer.Error switch
                {
                    LexError.UnterminatedString => UnterminatedString,
                    LexError.UnterminatedQuotedIdentifier => UnterminatedQuotedIdentifier,
                    LexError.UnterminatedComment => UnterminatedComment,
                    _ => UnterminatedDollarQuote,
                };
            }

            batch.Add(statement);
        }

        RoutingHint hint = lexer.HintPrimary ? RoutingHint.Primary : lexer.HintReplica ? RoutingHint.Replica : RoutingHint.None;
        return batch.ToClassification(hint, functions);
    }

    private static Verdict ClassifyStatement(ref Lexer lexer, Token first, ref List<string>? functions, bool nested)
    {
        if (first.Kind == TokenKind.OpenParen)
        {
            // (SELECT 1) UNION (SELECT 2)
            return Scan(ref lexer, first, firstIsPending: true, ScanMode.Query, Verdict.Read(null), ref functions);
        }

        if (first.Kind != TokenKind.Word)
        {
            return Scan(ref lexer, first, firstIsPending: true, ScanMode.Other, Verdict.Unknown(Unrecognised), ref functions);
        }

        switch (first.Keyword)
        {
            case Keyword.Select:
            case Keyword.Values:
            case Keyword.Table:
            case Keyword.With:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Query, Verdict.Read(null), ref functions);

            case Keyword.Show:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, Verdict.Read(null), ref functions);

            case Keyword.Explain:
                return ClassifyExplain(ref lexer, first, ref functions, nested);

            case Keyword.Copy:
                // The head (read or write) depends on TO / FROM, which the scan finds.
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Copy, Verdict.Unknown("COPY"), ref functions);

            case Keyword.Insert:
            case Keyword.Update:
            case Keyword.Delete:
            case Keyword.Merge:
            case Keyword.Call:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Dml, Verdict.Write(WriteDetail(first.Keyword)), ref functions);

            case Keyword.Create:
                return ClassifyCreate(ref lexer, first, ref functions);

            case Keyword.Alter:
            case Keyword.Drop:
            case Keyword.Comment:
            case Keyword.Grant:
            case Keyword.Revoke:
            case Keyword.Reindex:
            case Keyword.Cluster:
            case Keyword.Vacuum:
            case Keyword.Analyze:
            case Keyword.Analyse:
            case Keyword.Refresh:
            case Keyword.Security:
            case Keyword.Import:
            case Keyword.Lock:
            case Keyword.Do:
            case Keyword.Notify:
            case Keyword.Checkpoint:
            case Keyword.Truncate:
            case Keyword.Reassign:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, Verdict.Write(WriteDetail(first.Keyword)), ref functions);

            case Keyword.Declare:
            case Keyword.Fetch:
            case Keyword.Move:
            case Keyword.Close:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, Verdict.Pinned(StatementKind.Unknown, Cursor), ref functions);

            case Keyword.Begin:
            case Keyword.Start:
            case Keyword.Commit:
            case Keyword.End:
            case Keyword.Rollback:
            case Keyword.Abort:
            case Keyword.Savepoint:
            case Keyword.Release:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, Verdict.Pinned(StatementKind.Unknown, TransactionControl), ref functions);

            case Keyword.Prepare:
            {
                Lexer peek = lexer;
                string detail = peek.Next().Keyword == Keyword.Transaction ? TransactionControl : PreparedStatement;
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, Verdict.Pinned(StatementKind.Unknown, detail), ref functions);
            }

            case Keyword.Execute:
            case Keyword.Deallocate:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, Verdict.Pinned(StatementKind.Unknown, PreparedStatement), ref functions);

            case Keyword.Listen:
            case Keyword.Unlisten:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, Verdict.Pinned(StatementKind.Unknown, NotificationListener), ref functions);

            case Keyword.Discard:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, Verdict.Pinned(StatementKind.Unknown, "DISCARD"), ref functions);

            case Keyword.Set:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, ClassifySet(lexer), ref functions);

            case Keyword.Reset:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, new Verdict(StatementKind.Read, SessionEffect.Replay, "RESET"), ref functions);

            default:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, Verdict.Unknown(Unrecognised), ref functions);
        }
    }

    private static Verdict Scan(ref Lexer lexer, Token first, bool firstIsPending, ScanMode mode, Verdict head, ref List<string>? functions, bool createRoutine = false)
    {
        var scan = new BodyScan(mode, createRoutine);
        scan.Run(ref lexer, first, firstIsPending, ref functions);
        return scan.Finish(head);
    }

    private static Verdict ClassifyExplain(ref Lexer lexer, Token first, ref List<string>? functions, bool nested)
    {
        if (nested)
        {
            // EXPLAIN EXPLAIN is not SQL; refusing it also bounds the recursion on hostile text.
            return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, Verdict.Unknown(Unrecognised), ref functions);
        }

        bool analyze = false;
        Token token = lexer.Next();
        if (token.Kind == TokenKind.OpenParen)
        {
            if (!ReadExplainOptions(ref lexer, ref analyze))
            {
                return Verdict.Unknown("malformed EXPLAIN");
            }

            token = lexer.Next();
        }
        else
        {
            while (token.Keyword is Keyword.Analyze or Keyword.Analyse or Keyword.Verbose)
            {
                analyze |= token.Keyword != Keyword.Verbose;
                token = lexer.Next();
            }
        }

        if (token.Kind is TokenKind.End or TokenKind.Semicolon or TokenKind.Error)
        {
            return Verdict.Unknown("EXPLAIN without a statement");
        }

        int known = functions?.Count ?? 0;
        Verdict inner = ClassifyStatement(ref lexer, token, ref functions, nested: true);
        if (analyze)
        {
            return inner; // EXPLAIN ANALYZE runs the statement
        }

        // Without ANALYZE nothing runs: the planner only folds immutable and stable functions, which cannot write.
        if (functions is not null && functions.Count > known)
        {
            functions.RemoveRange(known, functions.Count - known);
        }

        if (inner.Detail is TemporaryTable or TemporaryObject)
        {
            // Planning CREATE TEMP TABLE ... AS creates the session's temporary schema, which a hot standby refuses.
            return Verdict.Write("EXPLAIN of a temporary object");
        }

        return inner.Kind == StatementKind.Unknown ? inner : Verdict.Read("EXPLAIN");
    }

    /// <summary>Reads <c>( option [value], ... )</c> after EXPLAIN. Returns false when the statement ended inside it.</summary>
    private static bool ReadExplainOptions(ref Lexer lexer, ref bool analyze)
    {
        int depth = 1;
        bool optionStart = true;
        while (true)
        {
            Token token = lexer.Next();
            switch (token.Kind)
            {
                case TokenKind.End:
                case TokenKind.Error:
                case TokenKind.Semicolon:
                    return false;
                case TokenKind.OpenParen:
                    depth++;
                    break;
                case TokenKind.CloseParen:
                    if (--depth == 0)
                    {
                        return true;
                    }

                    break;
                case TokenKind.Word when depth == 1 && optionStart && token.Keyword is Keyword.Analyze or Keyword.Analyse:
                {
                    Lexer peek = lexer;
                    Token value = peek.Next();
                    analyze = value.Kind is TokenKind.Comma or TokenKind.CloseParen || !IsFalse(lexer, value);
                    break;
                }
            }

            optionStart = depth == 1 && token.Kind is TokenKind.OpenParen or TokenKind.Comma;
        }
    }

    /// <summary>Whether an EXPLAIN option value is false (PostgreSQL accepts false / off / 0 there).</summary>
    private static bool IsFalse(in Lexer lexer, Token value)
    {
        ReadOnlySpan<char> text = lexer.Text(value);
        if (value.Kind == TokenKind.String && text.Length >= 2 && text[0] == '\'')
        {
            text = text[1..^1];
        }
        else if (value.Kind is not (TokenKind.Word or TokenKind.Number))
        {
            return false;
        }

        return text.Equals("false", StringComparison.OrdinalIgnoreCase)
            || text.Equals("off", StringComparison.OrdinalIgnoreCase)
            || text.SequenceEqual("0");
    }

    private static Verdict ClassifyCreate(ref Lexer lexer, Token first, ref List<string>? functions)
    {
        // CREATE [OR REPLACE] [GLOBAL | LOCAL] {TEMP | TEMPORARY} [UNLOGGED] {TABLE | VIEW | SEQUENCE ...}
        Lexer peek = lexer;
        Token token = peek.Next();
        if (token.Keyword == Keyword.Or)
        {
            peek.Next(); // REPLACE
            token = peek.Next();
        }

        bool routine = token.Keyword is Keyword.Function or Keyword.Procedure;
        if (token.Keyword is Keyword.Global or Keyword.Local)
        {
            token = peek.Next();
        }

        bool temporary = token.Keyword is Keyword.Temp or Keyword.Temporary;
        if (temporary)
        {
            token = peek.Next();
            if (token.Keyword == Keyword.Unlogged)
            {
                token = peek.Next();
            }
        }

        Verdict head = temporary
            ? Verdict.Pinned(StatementKind.Write, token.Keyword == Keyword.Table ? TemporaryTable : TemporaryObject)
            : Verdict.Write("CREATE");
        return Scan(ref lexer, first, firstIsPending: false, ScanMode.Create, head, ref functions, createRoutine: routine);
    }

    /// <summary>Classifies <c>SET ...</c> from the token after SET, without consuming it.</summary>
    private static Verdict ClassifySet(Lexer peek)
    {
        Token token = peek.Next();
        switch (token.Keyword)
        {
            case Keyword.Local:
                return Verdict.Read("SET LOCAL"); // ends with the transaction
            case Keyword.Transaction:
                return RestNamesStrongIsolation(peek)
                    ? Verdict.Pinned(StatementKind.Unknown, StrongIsolation)
                    : RestNamesReadWrite(peek)
                        ? Verdict.Write(ReadWriteTransaction) // a hot standby refuses read-write mode
                        : Verdict.Read("SET TRANSACTION");
            case Keyword.Constraints:
                return Verdict.Read("SET CONSTRAINTS");
            case Keyword.Session:
            {
                Lexer afterSession = peek;
                Token next = afterSession.Next();
                if (next.Keyword == Keyword.Characteristics)
                {
                    return RestNamesStrongIsolation(afterSession)
                        ? Verdict.Pinned(StatementKind.Unknown, StrongIsolation)
                        : new Verdict(StatementKind.Read, SessionEffect.Replay, "SET SESSION CHARACTERISTICS");
                }

                return ClassifySetParameter(afterSession, next);
            }

            default:
                return ClassifySetParameter(peek, token);
        }
    }

    private static Verdict ClassifySetParameter(Lexer afterName, Token name)
    {
        // SET default_transaction_isolation = 'serializable' is SET SESSION CHARACTERISTICS in another spelling.
        if (name.Kind is TokenKind.Word or TokenKind.QuotedIdentifier)
        {
            ReadOnlySpan<char> text = afterName.Text(name).Trim('"');
            if ((text.Equals("default_transaction_isolation", StringComparison.OrdinalIgnoreCase)
                    || text.Equals("transaction_isolation", StringComparison.OrdinalIgnoreCase))
                && RestNamesStrongIsolation(afterName))
            {
                return Verdict.Pinned(StatementKind.Unknown, StrongIsolation);
            }
        }

        return new Verdict(StatementKind.Read, SessionEffect.Replay, "SET");
    }

    private const string ReadWriteTransaction = "SET TRANSACTION READ WRITE";

    /// <summary>Whether the rest of the statement names READ WRITE.</summary>
    private static bool RestNamesReadWrite(Lexer peek)
    {
        bool afterRead = false;
        while (true)
        {
            Token token = peek.Next();
            if (token.Kind is TokenKind.End or TokenKind.Error or TokenKind.Semicolon)
            {
                return false;
            }

            bool isWord = token.Kind == TokenKind.Word;
            if (afterRead && isWord && peek.Text(token).Equals("write", StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }

            afterRead = isWord && peek.Text(token).Equals("read", StringComparison.OrdinalIgnoreCase);
        }
    }

    /// <summary>Whether the rest of the statement names REPEATABLE READ or SERIALIZABLE (as a keyword or a string).</summary>
    private static bool RestNamesStrongIsolation(Lexer peek)
    {
        while (true)
        {
            Token token = peek.Next();
            switch (token.Kind)
            {
                case TokenKind.End:
                case TokenKind.Error:
                case TokenKind.Semicolon:
                    return false;
                case TokenKind.Word when token.Keyword is Keyword.Repeatable or Keyword.Serializable:
                    return true;
                case TokenKind.String:
                {
                    ReadOnlySpan<char> text = peek.Text(token);
                    if (text.Contains("serializable", StringComparison.OrdinalIgnoreCase)
                        || text.Contains("repeatable", StringComparison.OrdinalIgnoreCase))
                    {
                        return true;
                    }

                    break;
                }
            }
        }
    }

    private static string WriteDetail(Keyword keyword) => keyword switch
    {
        Keyword.Insert => "INSERT",
        Keyword.Update => "UPDATE",
        Keyword.Delete => "DELETE",
        Keyword.Merge => "MERGE",
        Keyword.Call => "CALL",
        Keyword.Alter => "ALTER",
        Keyword.Drop => "DROP",
        Keyword.Comment => "COMMENT",
        Keyword.Grant => "GRANT",
        Keyword.Revoke => "REVOKE",
        Keyword.Reindex => "REINDEX",
        Keyword.Cluster => "CLUSTER",
        Keyword.Vacuum => "VACUUM",
        Keyword.Analyze or Keyword.Analyse => "ANALYZE",
        Keyword.Refresh => "REFRESH",
        Keyword.Security => "SECURITY LABEL",
        Keyword.Import => "IMPORT FOREIGN SCHEMA",
        Keyword.Lock => "LOCK",
        Keyword.Do => "DO",
        Keyword.Notify => "NOTIFY",
        Keyword.Checkpoint => "CHECKPOINT",
        Keyword.Truncate => "TRUNCATE",
        Keyword.Reassign => "REASSIGN OWNED",
        _ => "write",
    };

    /// <summary>Order of <see cref="StatementKind"/> by how much it restricts routing.</summary>
    private static int Rank(StatementKind kind) => kind switch
    {
        StatementKind.Read => 0,
        StatementKind.Unknown => 1,
        _ => 2,
    };

    private enum ScanMode : byte
    {
        /// <summary>Statements whose functions do not matter for routing (DDL, session and cursor commands).</summary>
        Other,

        /// <summary>CREATE: also watches for objects created in <c>pg_temp</c>.</summary>
        Create,

        /// <summary>A statement that may be a read (SELECT, VALUES, TABLE, WITH, parenthesised query).</summary>
        Query,

        /// <summary>COPY: a query when it copies TO STDOUT, a write when it copies FROM.</summary>
        Copy,

        /// <summary>DML and CALL: writes already; functions are still collected (session-level advisory locks pin).</summary>
        Dml,
    }

    /// <summary>What one statement is, before batches are combined.</summary>
    private readonly record struct Verdict(StatementKind Kind, SessionEffect Effect, string? Detail)
    {
        public static Verdict Read(string? detail) => new(StatementKind.Read, SessionEffect.None, detail);

        public static Verdict Write(string detail) => new(StatementKind.Write, SessionEffect.None, detail);

        public static Verdict Unknown(string detail) => new(StatementKind.Unknown, SessionEffect.None, detail);

        public static Verdict Pinned(StatementKind kind, string detail) => new(kind, SessionEffect.Pin, detail);
    }

    /// <summary>Combines the statements of one command text.</summary>
    private struct CombinedVerdict
    {
        private int statements;
        private int replays;
        private bool anyPin;
        private bool anyWrite;
        private bool anyUnknown;
        private string? pinDetail;
        private string? writeDetail;
        private string? unknownDetail;
        private string? replayDetail;
        private string? readDetail;

        public void Add(Verdict statement)
        {
            statements++;
            switch (statement.Kind)
            {
                case StatementKind.Write:
                    writeDetail ??= statement.Detail;
                    anyWrite = true;
                    break;
                case StatementKind.Unknown:
                    unknownDetail ??= statement.Detail;
                    anyUnknown = true;
                    break;
                default:
                    readDetail ??= statement.Detail;
                    break;
            }

            if (statement.Effect == SessionEffect.Pin)
            {
                anyPin = true;
                pinDetail ??= statement.Detail;
            }
            else if (statement.Effect == SessionEffect.Replay)
            {
                replays++;
                replayDetail ??= statement.Detail;
            }
        }

        public readonly StatementClassification ToClassification(RoutingHint hint, List<string>? functions)
        {
            if (statements == 0)
            {
                return hint == RoutingHint.None ? EmptyText : new StatementClassification(StatementKind.Unknown, hint: hint, detail: EmptyText.Detail);
            }

            StatementKind kind = anyWrite ? StatementKind.Write : anyUnknown ? StatementKind.Unknown : StatementKind.Read;

            // Replaying a batch re-runs all of it, so a SET mixed with other statements cannot be replayed: pin instead.
            bool mixedReplay = replays > 0 && replays < statements;
            SessionEffect effect = anyPin || mixedReplay ? SessionEffect.Pin
                : replays > 0 ? SessionEffect.Replay
                : SessionEffect.None;
            string? detail = pinDetail
                ?? (mixedReplay ? MixedSessionCommand : null)
                ?? (anyWrite ? writeDetail : null)
                ?? (anyUnknown ? unknownDetail : null)
                ?? replayDetail
                ?? readDetail;

            if (kind == StatementKind.Read && effect == SessionEffect.None && hint == RoutingHint.None && detail is null
                && (functions is null || functions.Count == 0))
            {
                return StatementClassification.PlainRead;
            }

            return new StatementClassification(kind, effect, hint, functions, detail);
        }
    }
}
