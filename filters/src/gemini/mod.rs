//! Google Gemini (`generateContent`, `streamGenerateContent`, `countTokens`,
//! embeddings) ⇄ the canonical model.
