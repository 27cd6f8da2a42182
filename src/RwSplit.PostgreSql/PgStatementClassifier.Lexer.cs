using System;
using System.Collections.Generic;
using RwSplit.Routing;

namespace RwSplit.PostgreSql;

/// <summary>The lexer: tokens of PostgreSQL text (strings, quoted identifiers, dollar quotes, comments, hints).</summary>
internal static partial class PgStatementClassifier
{
    private enum TokenKind : byte
    {
        None,
        End,
        Error,
        Word,
        QuotedIdentifier,
        String,
        Number,
        Parameter,
        Operator,
        OpenParen,
        CloseParen,
        Comma,
        Dot,
        Semicolon,
    }

    private enum LexError : byte
    {
        None,
        UnterminatedString,
        UnterminatedQuotedIdentifier,
        UnterminatedComment,
        UnterminatedDollarQuote,
    }

    private readonly record struct Token(TokenKind Kind, int Start, int Length, Keyword Keyword = Keyword.None);

    /// <summary>
    /// A single-pass PostgreSQL lexer. A copy of it is a lookahead: copies are cheap and the original is untouched.
    /// Comments are skipped, and routing hints in them recorded.
    /// </summary>
    private struct Lexer
    {
        private readonly string text;
        private int position;

        public Lexer(string text)
        {
            this.text = text;
        }

        public LexError Error { get; private set; }

        public bool HintPrimary { get; private set; }

        public bool HintReplica { get; private set; }

        public readonly ReadOnlySpan<char> Text(Token token) => text.AsSpan(token.Start, token.Length);

        public Token Next()
        {
            string s = text;
            int i = position;
            while (true)
            {
                if (i >= s.Length)
                {
                    position = i;
                    return new Token(Error == LexError.None ? TokenKind.End : TokenKind.Error, i, 0);
                }

                char c = s[i];
                if (c is ' ' or '\t' or '\n' or '\r' or '\f' or '\v')
                {
                    i++;
                }
                else if (c == '-' && At(i + 1) == '-')
                {
                    int end = i + 2;
                    while (end < s.Length && s[end] is not ('\n' or '\r'))
                    {
                        end++;
                    }

                    ScanHints(i + 2, end);
                    i = end;
                }
                else if (c == '/' && At(i + 1) == '*')
                {
                    // Block comments nest in PostgreSQL.
                    int end = i + 2;
                    int nesting = 1;
                    while (nesting > 0)
                    {
                        if (end + 1 >= s.Length)
                        {
                            return Fail(LexError.UnterminatedComment);
                        }

                        if (s[end] == '/' && s[end + 1] == '*')
                        {
                            nesting++;
                            end += 2;
                        }
                        else if (s[end] == '*' && s[end + 1] == '/')
                        {
                            nesting--;
                            end += 2;
                        }
                        else
                        {
                            end++;
                        }
                    }

                    ScanHints(i + 2, end - 2);
                    i = end;
                }
                else
                {
                    break;
                }
            }

            char first = s[i];
            char second = At(i + 1);
            if (IsIdentifierStart(first) && second is not ('\'' or '&'))
            {
                // The common case first: a keyword or a name (E'', B'', X'', N'' and U&'' start like one).
                int end = SkipIdentifier(i + 1);
                position = end;
                return new Token(TokenKind.Word, i, end - i, LookupKeyword(s.AsSpan(i, end - i)));
            }

            switch (first)
            {
                case '\'':
                    return LexString(i, i + 1, backslashEscapes: false);
                case 'e' or 'E' when second == '\'':
                    return LexString(i, i + 2, backslashEscapes: true);
                case 'b' or 'B' or 'x' or 'X' or 'n' or 'N' when second == '\'':
                    return LexString(i, i + 2, backslashEscapes: false);
                case 'u' or 'U' when second == '&' && At(i + 2) == '\'':
                    return LexString(i, i + 3, backslashEscapes: false);
                case 'u' or 'U' when second == '&' && At(i + 2) == '"':
                    return LexQuotedIdentifier(i, i + 3);
                case '"':
                    return LexQuotedIdentifier(i, i + 1);
                case '$':
                    return LexDollar(i);
                case '(':
                    return Single(TokenKind.OpenParen, i);
                case ')':
                    return Single(TokenKind.CloseParen, i);
                case ',':
                    return Single(TokenKind.Comma, i);
                case ';':
                    return Single(TokenKind.Semicolon, i);
                case '.' when !IsDigit(second):
                    return Single(TokenKind.Dot, i);
                case ':' when second == ':':
                    position = i + 2;
                    return new Token(TokenKind.Operator, i, 2);
                case ':' or '@' when IsIdentifierStart(second):
                {
                    // Npgsql named parameters :name and @name.
                    int end = SkipIdentifier(i + 1);
                    position = end;
                    return new Token(TokenKind.Parameter, i, end - i);
                }
            }

            if (IsIdentifierStart(first))
            {
                int end = SkipIdentifier(i);
                position = end;
                return new Token(TokenKind.Word, i, end - i, LookupKeyword(s.AsSpan(i, end - i)));
            }

            if (IsDigit(first) || first == '.')
            {
                return LexNumber(i);
            }

            return Single(TokenKind.Operator, i);
        }

        private readonly char At(int index) => index < text.Length ? text[index] : '\0';

        private Token Single(TokenKind kind, int start)
        {
            position = start + 1;
            return new Token(kind, start, 1);
        }

        private Token Fail(LexError error)
        {
            Error = error;
            position = text.Length;
            return new Token(TokenKind.Error, text.Length, 0);
        }

        private readonly int SkipIdentifier(int index)
        {
            while (index < text.Length && IsIdentifierPart(text[index]))
            {
                index++;
            }

            return index;
        }

        private Token LexString(int start, int bodyStart, bool backslashEscapes)
        {
            string s = text;
            int i = bodyStart;
            while (true)
            {
                if (i >= s.Length)
                {
                    return Fail(LexError.UnterminatedString);
                }

                char c = s[i];
                if (c == '\\' && backslashEscapes)
                {
                    i += 2;
                }
                else if (c == '\'')
                {
                    if (At(i + 1) != '\'')
                    {
                        position = i + 1;
                        return new Token(TokenKind.String, start, i + 1 - start);
                    }

                    i += 2; // '' stands for one '
                }
                else
                {
                    i++;
                }
            }
        }

        private Token LexQuotedIdentifier(int start, int bodyStart)
        {
            string s = text;
            int i = bodyStart;
            while (true)
            {
                if (i >= s.Length)
                {
                    return Fail(LexError.UnterminatedQuotedIdentifier);
                }

                if (s[i] == '"')
                {
                    if (At(i + 1) != '"')
                    {
                        position = i + 1;
                        return new Token(TokenKind.QuotedIdentifier, start, i + 1 - start);
                    }

                    i += 2;
                }
                else
                {
                    i++;
                }
            }
        }

        private Token LexDollar(int start)
        {
            string s = text;
            int i = start + 1;
            if (IsDigit(At(i)))
            {
                while (IsDigit(At(i)))
                {
                    i++;
                }

                position = i;
                return new Token(TokenKind.Parameter, start, i - start);
            }

            // $$ or $tag$: the tag is an identifier without '$'.
            if (IsIdentifierStart(At(i)))
            {
                i++;
                while (i < s.Length && IsIdentifierPart(s[i]) && s[i] != '$')
                {
                    i++;
                }
            }

            if (At(i) != '$')
            {
                return Single(TokenKind.Operator, start);
            }

            ReadOnlySpan<char> delimiter = s.AsSpan(start, i + 1 - start);
            int bodyStart = i + 1;
            int found = s.AsSpan(bodyStart).IndexOf(delimiter);
            if (found < 0)
            {
                return Fail(LexError.UnterminatedDollarQuote);
            }

            position = bodyStart + found + delimiter.Length;
            return new Token(TokenKind.String, start, position - start);
        }

        private Token LexNumber(int start)
        {
            int i = start;
            if (text[i] == '0' && (At(i + 1) | 0x20) is 'x' or 'o' or 'b' && IsHexDigit(At(i + 2)))
            {
                i += 2;
                while (IsHexDigit(At(i)) || At(i) == '_')
                {
                    i++;
                }
            }
            else
            {
                while (IsDigit(At(i)) || At(i) == '_')
                {
                    i++;
                }

                if (At(i) == '.' && At(i + 1) != '.')
                {
                    i++;
                    while (IsDigit(At(i)) || At(i) == '_')
                    {
                        i++;
                    }
                }

                if ((At(i) | 0x20) == 'e')
                {
                    int exponent = i + 1;
                    if (At(exponent) is '+' or '-')
                    {
                        exponent++;
                    }

                    if (IsDigit(At(exponent)))
                    {
                        i = exponent;
                        while (IsDigit(At(i)))
                        {
                            i++;
                        }
                    }
                }
            }

            // Letters right after a number stay a separate word (1FOR UPDATE parsed before PostgreSQL 15).
            position = i;
            return new Token(TokenKind.Number, start, i - start);
        }

        private void ScanHints(int start, int end)
        {
            ReadOnlySpan<char> comment = text.AsSpan(start, Math.Max(0, end - start));
            while (true)
            {
                int at = comment.IndexOf("rwsplit:", StringComparison.OrdinalIgnoreCase);
                if (at < 0)
                {
                    return;
                }

                comment = comment[(at + "rwsplit:".Length)..];
                if (comment.StartsWith("primary", StringComparison.OrdinalIgnoreCase))
                {
                    HintPrimary = true;
                }
                else if (comment.StartsWith("replica", StringComparison.OrdinalIgnoreCase))
                {
                    HintReplica = true;
                }
            }
        }

        private static bool IsDigit(char c) => (uint)(c - '0') <= 9;

        private static bool IsHexDigit(char c) => IsDigit(c) || (uint)((c | 0x20) - 'a') <= 'f' - 'a';

        private static bool IsIdentifierStart(char c) => (uint)((c | 0x20) - 'a') <= 'z' - 'a' || c == '_' || c >= 0x80;

        private static bool IsIdentifierPart(char c) => IsIdentifierStart(c) || IsDigit(c) || c == '$';
    }
}
