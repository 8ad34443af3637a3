#include "common/sql/tokenizer.h"

#include <string>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "common/sql/token_cursor.h"
#include "gtest/gtest.h"

namespace conductor::sql {
namespace {

using Kinds = std::vector<std::pair<TokenKind, std::string>>;

// The significant tokens as (kind, text), without the final kEnd.
Kinds Significant(absl::string_view sql) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(sql);
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  Kinds out;
  if (!tokens.ok()) return out;
  for (const Token& token : *tokens) {
    if (IsTrivia(token) || token.kind == TokenKind::kEnd) continue;
    out.emplace_back(token.kind, std::string(token.text));
  }
  return out;
}

// The single significant token of `sql`.
Token Only(const std::vector<Token>& tokens) {
  std::vector<Token> significant;
  for (const Token& token : tokens) {
    if (!IsTrivia(token) && token.kind != TokenKind::kEnd) significant.push_back(token);
  }
  EXPECT_EQ(significant.size(), 1u);
  return significant.empty() ? tokens.back() : significant[0];
}

void ExpectSyntaxError(absl::string_view sql, absl::string_view fragment) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(sql);
  ASSERT_FALSE(tokens.ok()) << sql;
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument) << sql;
  EXPECT_EQ(ErrorReason(tokens.status()), reason::kSqlSyntax) << sql;
  EXPECT_NE(tokens.status().message().find(fragment), absl::string_view::npos)
      << sql << " → " << tokens.status();
}

TEST(TokenizerTest, KeepsTriviaAndOffsetsAndEndsWithEnd) {
  std::string sql = "SELECT  -- hi\n a /* b */;";
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(sql);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  std::vector<TokenKind> kinds;
  std::string rebuilt;
  for (const Token& token : *tokens) {
    kinds.push_back(token.kind);
    EXPECT_EQ(sql.substr(token.offset, token.text.size()), token.text);
    rebuilt += std::string(token.text);
  }
  EXPECT_EQ(rebuilt, sql);  // nothing lost: rewrites can copy tokens verbatim
  EXPECT_EQ(kinds, (std::vector<TokenKind>{
                       TokenKind::kIdentifier, TokenKind::kWhitespace, TokenKind::kComment,
                       TokenKind::kWhitespace, TokenKind::kIdentifier, TokenKind::kWhitespace,
                       TokenKind::kComment, TokenKind::kOperator, TokenKind::kEnd}));
  EXPECT_EQ(tokens->back().offset, sql.size());
  EXPECT_EQ((*tokens)[2].text, "-- hi");  // the newline is whitespace, not comment
}

TEST(TokenizerTest, EmptyInputIsJustEnd) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize("");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 1u);
  EXPECT_EQ((*tokens)[0].kind, TokenKind::kEnd);
}

TEST(TokenizerTest, QuotedIdentifiersAndStrings) {
  EXPECT_EQ(Significant(R"("a ""b""" [c d] `e``f` 'it''s')"),
            (Kinds{{TokenKind::kQuotedIdentifier, R"("a ""b""")"},
                   {TokenKind::kQuotedIdentifier, "[c d]"},
                   {TokenKind::kQuotedIdentifier, "`e``f`"},
                   {TokenKind::kString, "'it''s'"}}));
  auto tokens = Tokenize(R"("a ""b""")");
  EXPECT_EQ(IdentifierValue(Only(*tokens)), "a \"b\"");
  tokens = Tokenize("[c \"d]");
  EXPECT_EQ(IdentifierValue(Only(*tokens)), "c \"d");
  tokens = Tokenize("`e``f`");
  EXPECT_EQ(IdentifierValue(Only(*tokens)), "e`f");
  tokens = Tokenize("'it''s'");
  EXPECT_EQ(StringValue(Only(*tokens)), "it's");
  tokens = Tokenize("''");
  EXPECT_EQ(StringValue(Only(*tokens)), "");
  tokens = Tokenize("Bare_1$");
  EXPECT_EQ(IdentifierValue(Only(*tokens)), "Bare_1$");
}

TEST(TokenizerTest, QuotesInsideOtherQuotesAreText) {
  EXPECT_EQ(Significant(R"('a "b" -- c /* d' "x 'y'")"),
            (Kinds{{TokenKind::kString, R"('a "b" -- c /* d')"},
                   {TokenKind::kQuotedIdentifier, R"("x 'y'")"}}));
}

TEST(TokenizerTest, Utf8Identifiers) {
  EXPECT_EQ(Significant("héllo wörld"),
            (Kinds{{TokenKind::kIdentifier, "héllo"}, {TokenKind::kIdentifier, "wörld"}}));
}

TEST(TokenizerTest, Numbers) {
  EXPECT_EQ(Significant("12 1.5 .5 1e10 1.5E-3 2e+4 0x1F 0XaB 7."),
            (Kinds{{TokenKind::kNumber, "12"},
                   {TokenKind::kNumber, "1.5"},
                   {TokenKind::kNumber, ".5"},
                   {TokenKind::kNumber, "1e10"},
                   {TokenKind::kNumber, "1.5E-3"},
                   {TokenKind::kNumber, "2e+4"},
                   {TokenKind::kNumber, "0x1F"},
                   {TokenKind::kNumber, "0XaB"},
                   {TokenKind::kNumber, "7."}}));
  // A '.' not followed by a digit is an operator (qualified names).
  EXPECT_EQ(Significant("t.c"), (Kinds{{TokenKind::kIdentifier, "t"},
                                       {TokenKind::kOperator, "."},
                                       {TokenKind::kIdentifier, "c"}}));
  // A minus sign is an operator, not part of the number.
  EXPECT_EQ(Significant("-5"), (Kinds{{TokenKind::kOperator, "-"}, {TokenKind::kNumber, "5"}}));
}

TEST(TokenizerTest, MalformedNumbers) {
  ExpectSyntaxError("SELECT 12abc", "malformed number at offset 7");
  ExpectSyntaxError("SELECT 1e", "malformed number");
  ExpectSyntaxError("SELECT 0x", "malformed number");
  ExpectSyntaxError("SELECT 0xFG", "malformed number");
}

TEST(TokenizerTest, Blobs) {
  EXPECT_EQ(Significant("x'00ff' X'' x"), (Kinds{{TokenKind::kBlob, "x'00ff'"},
                                                 {TokenKind::kBlob, "X''"},
                                                 {TokenKind::kIdentifier, "x"}}));
  ExpectSyntaxError("SELECT x'abc'", "odd number of hex digits");
  ExpectSyntaxError("SELECT x'zz'", "malformed blob literal");
  ExpectSyntaxError("SELECT x'00", "unterminated blob literal at offset 7");
}

TEST(TokenizerTest, Parameters) {
  EXPECT_EQ(Significant("? ?12 :name @v $a::b #x"), (Kinds{{TokenKind::kParameter, "?"},
                                                           {TokenKind::kParameter, "?12"},
                                                           {TokenKind::kParameter, ":name"},
                                                           {TokenKind::kParameter, "@v"},
                                                           {TokenKind::kParameter, "$a::b"},
                                                           {TokenKind::kParameter, "#x"}}));
  ExpectSyntaxError("SELECT :", "parameter without a name");
  ExpectSyntaxError("SELECT @ 1", "parameter without a name");
}

TEST(TokenizerTest, Operators) {
  std::vector<std::string> texts;
  for (const auto& [kind, text] :
       Significant("( ) , ; . + - * / % = == != <> < <= > >= || << >> & | ~ -> ->>")) {
    EXPECT_EQ(kind, TokenKind::kOperator) << text;
    texts.push_back(text);
  }
  EXPECT_EQ(texts, (std::vector<std::string>{"(",  ")",  ",",  ";",  ".",  "+", "-",  "*",  "/",
                                             "%",  "=",  "==", "!=", "<>", "<", "<=", ">",  ">=",
                                             "||", "<<", ">>", "&",  "|",  "~", "->", "->>"}));
  // Longest match without spaces.
  EXPECT_EQ(Significant("a<=b"), (Kinds{{TokenKind::kIdentifier, "a"},
                                        {TokenKind::kOperator, "<="},
                                        {TokenKind::kIdentifier, "b"}}));
}

TEST(TokenizerTest, Comments) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize("/* a /* b */ c */");
  ASSERT_TRUE(tokens.ok());
  // Block comments do not nest: the first */ ends it.
  EXPECT_EQ((*tokens)[0].kind, TokenKind::kComment);
  EXPECT_EQ((*tokens)[0].text, "/* a /* b */");
  EXPECT_EQ(Significant("/* a /* b */ c */"), (Kinds{{TokenKind::kIdentifier, "c"},
                                                     {TokenKind::kOperator, "*"},
                                                     {TokenKind::kOperator, "/"}}));
  // A line comment may end the input without a newline.
  tokens = Tokenize("a -- the end");
  ASSERT_TRUE(tokens.ok());
  EXPECT_EQ((*tokens)[2].text, "-- the end");
  // Comment markers inside strings are text.
  EXPECT_EQ(Significant("'--' '/*'"),
            (Kinds{{TokenKind::kString, "'--'"}, {TokenKind::kString, "'/*'"}}));
  // "/**/" is a complete comment; "/*/" is not.
  EXPECT_EQ(Significant("a/**/b"),
            (Kinds{{TokenKind::kIdentifier, "a"}, {TokenKind::kIdentifier, "b"}}));
  ExpectSyntaxError("a /*/", "unterminated /* comment at offset 2");
}

TEST(TokenizerTest, UnterminatedThings) {
  ExpectSyntaxError("SELECT 'abc", "unterminated string literal at offset 7");
  ExpectSyntaxError("SELECT 'it''s", "unterminated string literal");
  ExpectSyntaxError("SELECT \"abc", "unterminated quoted identifier at offset 7");
  ExpectSyntaxError("SELECT `abc", "unterminated quoted identifier");
  ExpectSyntaxError("SELECT [abc", "unterminated [identifier] at offset 7");
  ExpectSyntaxError("SELECT 1 /* x", "unterminated /* comment at offset 9");
}

TEST(TokenizerTest, UnacceptableCharacters) {
  ExpectSyntaxError("SELECT 1 ^ 2", "unrecognized token \"^\" at offset 9");
  ExpectSyntaxError("SELECT !1", "unrecognized token \"!\"");
  ExpectSyntaxError("SELECT \\", "unrecognized token");
  ExpectSyntaxError(std::string("SELECT \0 1", 10), "control character 0x00 at offset 7");
  ExpectSyntaxError("SELECT \x01", "control character 0x01");
}

TEST(TokenizerTest, KeywordsAndNames) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize("select \"select\" 'select'");
  ASSERT_TRUE(tokens.ok());
  EXPECT_TRUE(IsKeyword((*tokens)[0], "SELECT"));
  EXPECT_TRUE(IsKeyword((*tokens)[0], "select"));
  EXPECT_FALSE(IsKeyword((*tokens)[0], "SELECTS"));
  EXPECT_FALSE(IsKeyword((*tokens)[2], "SELECT"));  // quoted: never a keyword
  EXPECT_FALSE(IsKeyword((*tokens)[4], "SELECT"));  // a string
  EXPECT_TRUE(SameName("Orders", "oRDERS"));
  EXPECT_FALSE(SameName("orders", "order"));
  // ASCII folding only, as SQLite does by default.
  EXPECT_FALSE(SameName("É", "é"));
}

TEST(TokenCursorTest, SkipsTriviaAndStopsAtEnd) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(" a /*x*/ ( b ) -- c");
  ASSERT_TRUE(tokens.ok());
  TokenCursor cursor(*tokens);
  EXPECT_TRUE(cursor.TryKeyword("A"));
  EXPECT_TRUE(cursor.PeekOperator("("));
  EXPECT_TRUE(cursor.PeekKeyword("b", 1));
  EXPECT_TRUE(cursor.SkipParenthesized().ok());
  EXPECT_TRUE(cursor.AtEnd());
  EXPECT_EQ(cursor.Next().kind, TokenKind::kEnd);
  EXPECT_EQ(cursor.Next().kind, TokenKind::kEnd);
}

TEST(TokenCursorTest, SyntaxErrorsNameTokenAndOffset) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize("a (b");
  ASSERT_TRUE(tokens.ok());
  TokenCursor cursor(*tokens);
  absl::Status status = cursor.ExpectKeyword("B");
  EXPECT_EQ(status.message(), "near \"a\" (offset 0): expected B");
  EXPECT_EQ(ErrorReason(status), reason::kSqlSyntax);
  cursor.Next();
  status = cursor.SkipParenthesized();
  EXPECT_EQ(status.message(),
            "at end of statement (offset 4): expected \")\" to close the \"(\" at offset 2");
}

TEST(FirstStatementTest, CutsAtSemicolonAndRefusesASecondStatement) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(";; SELECT 1; ; -- done\n");
  ASSERT_TRUE(tokens.ok());
  absl::StatusOr<std::vector<Token>> statement = FirstStatement(*tokens);
  ASSERT_TRUE(statement.ok()) << statement.status();
  ASSERT_EQ(statement->size(), 4u);  // SELECT, space, 1, end
  EXPECT_EQ((*statement)[0].text, "SELECT");
  EXPECT_EQ(statement->back().kind, TokenKind::kEnd);
  EXPECT_EQ(statement->back().offset, 11u);

  tokens = Tokenize("SELECT 1; SELECT 2");
  ASSERT_TRUE(tokens.ok());
  statement = FirstStatement(*tokens);
  EXPECT_EQ(statement.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(statement.status().message().find("only one statement"), std::string::npos);
  EXPECT_NE(statement.status().message().find("offset 10"), std::string::npos);
}

}  // namespace
}  // namespace conductor::sql
