using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Threading;
using Microsoft.SqlServer.TransactSql.ScriptDom;
using RwSplit.Routing;

namespace RwSplit.SqlServer;

/// <summary>What the parse found: the findings of one command text and how they are described in logs.</summary>
internal sealed partial class TSqlStatementClassifier
{
    private static string Describe(TSqlStatement statement)
    {
        string typeName = statement.GetType().Name;
        int end = typeName.IndexOf("Statement", StringComparison.Ordinal);
        if (end <= 0)
        {
            end = typeName.Length;
        }

        var builder = new StringBuilder(end + 8);
        for (int i = 0; i < end; i++)
        {
            char c = typeName[i];
            if (i > 0 && char.IsUpper(c) && !char.IsUpper(typeName[i - 1]))
            {
                builder.Append(' ');
            }

            builder.Append(char.ToUpperInvariant(c));
        }

        return builder.ToString();
    }

    // The parser's messages quote the offending text ("Incorrect syntax near 'x'."), which can be a literal value:
    // keep the quote only when it is a keyword or an identifier.
    private static string DescribeParseError(ParseError error, IList<TSqlParserToken>? tokens)
    {
        string message = error.Message ?? "syntax error";
        int open = message.IndexOf('\'', StringComparison.Ordinal);
        if (open >= 0)
        {
            int close = message.LastIndexOf('\'');
            bool keep = false;
            if (close > open && tokens is not null)
            {
                string quoted = message.Substring(open + 1, close - open - 1);
                TSqlParserToken? token = TokenAt(tokens, error.Offset);
                keep = token is not null
                    && (token.IsKeyword() || token.TokenType is TSqlTokenType.Identifier or TSqlTokenType.QuotedIdentifier)
                    && string.Equals(token.Text, quoted, StringComparison.OrdinalIgnoreCase);
            }

            if (!keep)
            {
                message = close > open
                    ? string.Concat(message.AsSpan(0, open), "'…'", message.AsSpan(close + 1))
                    : string.Concat(message.AsSpan(0, open), "'…'");
            }
        }

        return $"T-SQL parse error at line {error.Line}: {message}";
    }

    private static TSqlParserToken? TokenAt(IList<TSqlParserToken> tokens, int offset)
    {
        foreach (TSqlParserToken token in tokens)
        {
            if (token.Offset == offset)
            {
                return token;
            }

            if (token.Offset > offset)
            {
                break;
            }
        }

        return null;
    }

    /// <summary>
    /// What one command text was found to do, gathered statement by statement. It is also the visitor that walks each
    /// statement for the constructs that make any statement a write or pin the session, wherever they are nested.
    /// </summary>
    private sealed class Findings : TSqlFragmentVisitor
    {
        private bool _write;
        private bool _unknown;
        private bool _pin;
        private string? _writeDetail;
        private string? _unknownDetail;
        private string? _pinDetail;
        private string? _readDetail;
        private string? _replayDetail;
        private int _replays;
        private int _benignReplays;
        private bool _primaryHint;
        private bool _replicaHint;

        /// <summary>The statements judged, nested ones included, to tell a pure session command from a mix.</summary>
        public int Statements { get; set; }

        public void AddWrite(string detail)
        {
            if (!_write)
            {
                _write = true;
                _writeDetail = detail;
            }
        }

        public void AddUnknown(string detail)
        {
            if (!_unknown)
            {
                _unknown = true;
                _unknownDetail = detail;
            }
        }

        public void AddPin(string detail)
        {
            if (!_pin)
            {
                _pin = true;
                _pinDetail = detail;
            }
        }

        public void AddRead(string detail) => _readDetail ??= detail;

        /// <summary>A session command, replayed when the batch holds nothing else.</summary>
        /// <param name="detail">What it is.</param>
        /// <param name="benignWhenMixed">
        /// Whether, mixed with other statements, it may simply take effect where the batch runs (no pin): its effect
        /// changes no result a statement on another connection reads.
        /// </param>
        public void AddReplay(string detail, bool benignWhenMixed = false)
        {
            _replays++;
            if (benignWhenMixed)
            {
                _benignReplays++;
            }

            _replayDetail ??= detail;
        }

        public void ReadHints(IList<TSqlParserToken> tokens)
        {
            foreach (TSqlParserToken token in tokens)
            {
                if (token.TokenType is TSqlTokenType.SingleLineComment or TSqlTokenType.MultilineComment && token.Text is { } text)
                {
                    _primaryHint |= text.Contains("rwsplit:primary", StringComparison.OrdinalIgnoreCase);
                    _replicaHint |= text.Contains("rwsplit:replica", StringComparison.OrdinalIgnoreCase);
                }
            }
        }

        /// <summary>
        /// Takes in what the text of EXEC('...') or sp_executesql found. Its SET options and USE end with the dynamic
        /// batch, so they replay nothing; everything else (writes, pins, hints) counts as if written here.
        /// </summary>
        public void MergeDynamic(Findings inner)
        {
            if (inner._write)
            {
                AddWrite(inner._writeDetail!);
            }

            if (inner._unknown)
            {
                AddUnknown(inner._unknownDetail!);
            }

            if (inner._pin)
            {
                AddPin(inner._pinDetail!);
            }

            if (inner._readDetail is not null)
            {
                AddRead(inner._readDetail);
            }

            _primaryHint |= inner._primaryHint;
            _replicaHint |= inner._replicaHint;
        }

        public StatementClassification ToClassification()
        {
            StatementKind kind = _write ? StatementKind.Write : _unknown ? StatementKind.Unknown : StatementKind.Read;
            RoutingHint hint = _primaryHint ? RoutingHint.Primary : _replicaHint ? RoutingHint.Replica : RoutingHint.None;

            SessionEffect effect = SessionEffect.None;
            string? pinDetail = _pinDetail;
            if (_pin)
            {
                effect = SessionEffect.Pin;
            }
            else if (_replays > 0)
            {
                // Replaying means running the whole text again elsewhere: only safe when it holds nothing else.
                effect = _replays == Statements ? SessionEffect.Replay
                    : _replays == _benignReplays ? SessionEffect.None
                    : SessionEffect.Pin;
                if (effect == SessionEffect.Pin)
                {
                    pinDetail = _replayDetail + " mixed with other statements";
                }
            }

            string? kindDetail = kind switch
            {
                StatementKind.Write => _writeDetail,
                StatementKind.Unknown => _unknownDetail,
                _ => effect == SessionEffect.Replay ? _replayDetail : _readDetail,
            };

            if (kind == StatementKind.Read && effect == SessionEffect.None && hint == RoutingHint.None && kindDetail is null)
            {
                return StatementClassification.PlainRead;
            }

            string? detail = kindDetail;
            if (effect == SessionEffect.Pin && pinDetail is not null && pinDetail != kindDetail)
            {
                detail = kindDetail is null ? pinDetail : kindDetail + "; " + pinDetail;
            }

            return new StatementClassification(kind, effect, hint, functions: null, detail);
        }

        public override void Visit(NextValueForExpression node) => AddWrite("sequence");

        public override void Visit(OutputClause node) => AddWrite("OUTPUT clause");

        public override void Visit(OutputIntoClause node) => AddWrite("OUTPUT clause");

        public override void Visit(TableHint node)
        {
            // Locks that outlive the read or exclude other readers: only meaningful on the primary, and refused by a
            // readable secondary (which runs under snapshot isolation) anyway.
            if (node.HintKind is TableHintKind.UpdLock or TableHintKind.XLock or TableHintKind.HoldLock
                or TableHintKind.TabLockX or TableHintKind.Serializable or TableHintKind.RepeatableRead)
            {
                AddWrite("locking hint");
            }
        }

        public override void Visit(SchemaObjectName node)
        {
            // #t and ##t (tables, procedures) live in one session only.
            if (node.BaseIdentifier?.Value is { Length: > 0 } name && name[0] == '#')
            {
                AddPin(TemporaryTableDetail);
            }
        }

        // OPENQUERY, OPENROWSET('provider', ...) and OPENDATASOURCE send text to another server that may run anything.
        public override void Visit(OpenQueryTableReference node) => AddUnknown("pass-through query");

        public override void Visit(OpenRowsetTableReference node) => AddUnknown("pass-through query");

        public override void Visit(AdHocTableReference node) => AddUnknown("pass-through query");

        // The identity of "the previous insert" exists only on the session that inserted, on the primary.
        public override void Visit(FunctionCall node)
        {
            if (node.CallTarget is null && node.FunctionName?.Value.Equals("SCOPE_IDENTITY", StringComparison.OrdinalIgnoreCase) == true)
            {
                AddUnknown("identity of a previous insert");
            }
        }

        public override void Visit(GlobalVariableExpression node)
        {
            if (node.Name?.Equals("@@IDENTITY", StringComparison.OrdinalIgnoreCase) == true)
            {
                AddUnknown("identity of a previous insert");
            }
        }
    }
}
