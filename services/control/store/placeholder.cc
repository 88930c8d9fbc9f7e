namespace latchkey::control {}
